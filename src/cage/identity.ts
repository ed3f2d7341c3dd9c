/**
 * Who an HTTP request comes from, as the identity hook (src/http/identity.ts) resolved it:
 * the admin token, a principal's signature, or nobody.
 */
export type Identity =
  | { kind: 'admin' }
  | { kind: 'principal', id: string, role: 'device' | 'service' | 'node' }
  | { kind: 'anonymous' }

declare module 'fastify' {
  interface FastifyRequest {
    identity: Identity
  }
}
