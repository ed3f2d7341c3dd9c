/**
 * Resolves who every HTTP request comes from, before its body is read:
 * - `Authorization: Bearer <admin token>` → admin (a wrong token is a 401);
 * - `Authorization: MN1-Ed25519 …` → the principal whose signature verifies (docs/protocol.md
 *   §10): same skew window and replay guard as MQTT CONNECT; revoked principals get 403;
 * - no Authorization → anonymous (routes decide what anonymous may do).
 * The signature covers the declared Content-Digest, so the body is checked against it as
 * it streams in, after the signature was accepted.
 */
import { createHash } from 'node:crypto'
import { Transform } from 'node:stream'
import type { FastifyInstance, FastifyRequest, onRequestHookHandler } from 'fastify'
import {
  parseHttpAuthorization, parseContentDigest, httpSigningInput, EMPTY_BODY_DIGEST, toHex, equalBytes, type ReplayGuard,
} from '../protocol/index.js'
import { verifyEd25519, type PrincipalDirectory } from '../auth/principal-keys.js'
import { BadRequestError, ForbiddenError, ServiceUnavailableError, UnauthorizedError } from '../errors.js'
import type { FleetIds } from '../cluster/fleet-ids.js'
import type { Identity } from '../cage/identity.js'
import { tokenMatcher } from './admin-token.js'

export interface IdentityOptions {
  adminToken: string
  principals: PrincipalDirectory
  /** Nonces of signed requests, remembered for twice the skew window. */
  nonces: ReplayGuard
  /** Cluster mode: the fleet's record of request nonces, so that a request replayed to another process is refused too. */
  fleetNonces?: FleetIds
  skewMs: number
}

const BEARER = /^Bearer +(\S+) *$/i
const ANONYMOUS: Identity = Object.freeze({ kind: 'anonymous' })
const ADMIN: Identity = Object.freeze({ kind: 'admin' })
// The digest a signed request declared, checked once its body has been read.
const declaredDigest = new WeakMap<FastifyRequest, Uint8Array>()

export function installIdentity (app: FastifyInstance, options: IdentityOptions): void {
  // null until the hook runs; every request passes the hook first.
  app.decorateRequest('identity', null as never)
  const isAdminToken = tokenMatcher(options.adminToken)

  app.addHook('onRequest', async (request, reply) => {
    const header = request.headers.authorization
    if (header === undefined) {
      request.identity = ANONYMOUS
      return
    }
    const bearer = BEARER.exec(header)
    if (bearer) {
      if (!isAdminToken(bearer[1])) throw unauthorized(reply, 'a valid admin token is required')
      request.identity = ADMIN
      return
    }
    request.identity = await verifySignedRequest(request, options, reply)
  })

  // Hashes the body as it streams in and refuses it unless it is what was signed.
  app.addHook('preParsing', async (request, _reply, payload) => {
    const expected = declaredDigest.get(request)
    // Fastify runs this hook for bodiless requests too but never reads their stream.
    if (!expected || !hasBody(request)) return payload
    declaredDigest.delete(request)
    const hash = createHash('sha256')
    return payload.pipe(new Transform({
      transform (chunk: Buffer, _encoding, callback) {
        hash.update(chunk)
        callback(null, chunk)
      },
      flush (callback) {
        callback(equalBytes(hash.digest(), expected) ? null : new BadRequestError('the body does not match the signed Content-Digest'))
      },
    }))
  })

  // A signed request without a body must have signed the digest of no body.
  app.addHook('preHandler', async request => {
    const expected = declaredDigest.get(request)
    if (expected && !equalBytes(expected, EMPTY_BODY_DIGEST)) {
      throw new BadRequestError('Content-Digest was signed but the request has no body')
    }
  })
}

async function verifySignedRequest (request: FastifyRequest, options: IdentityOptions, reply: Parameters<onRequestHookHandler>[1]): Promise<Identity> {
  const auth = parseHttpAuthorization(request.headers.authorization)
  if (!auth) throw unauthorized(reply, 'Authorization must be "Bearer <admin token>" or a well-formed MN1-Ed25519 signature')
  const digestHeader = request.headers['content-digest']
  const digest = digestHeader === undefined ? EMPTY_BODY_DIGEST : parseContentDigest(String(digestHeader))
  if (!digest) throw new BadRequestError('Content-Digest must be "sha-256=:<base64>:"')
  const principal = await options.principals.get(auth.id)
  if (!principal) throw unauthorized(reply, 'unknown principal or bad signature')
  const input = httpSigningInput(request.method, request.url, auth.ts, auth.nonce, digest)
  // Same order as CONNECT (§2): signature, window, nonce, then revocation, so that only the
  // key's holder learns that it was revoked.
  if (!(await verifyEd25519(principal.key, input, auth.signature))) throw unauthorized(reply, 'unknown principal or bad signature')
  const nowMs = Date.now()
  if (Math.abs(auth.ts - nowMs) > options.skewMs) throw unauthorized(reply, 'the request timestamp is outside the allowed clock skew')
  const nonce = toHex(auth.nonce)
  if (options.nonces.has(principal.id, nonce)) throw unauthorized(reply, 'replayed request: this nonce was used before')
  if (principal.revoked) throw new ForbiddenError('this principal is revoked')
  if (options.fleetNonces) {
    const fresh = await options.fleetNonces.firstSeen([[principal.id, nonce]]).catch((err: unknown) => {
      throw new ServiceUnavailableError('the fleet\'s nonce record cannot be reached; retry later', { cause: err })
    })
    if (!fresh[0]) throw unauthorized(reply, 'replayed request: this nonce was used before')
  }
  options.nonces.add(principal.id, nonce, nowMs)
  declaredDigest.set(request, digest)
  return { kind: 'principal', id: principal.id, role: principal.role }
}

function hasBody (request: FastifyRequest): boolean {
  const length = request.headers['content-length']
  return request.headers['transfer-encoding'] !== undefined || (length !== undefined && length !== '0')
}

function unauthorized (reply: Parameters<onRequestHookHandler>[1], message: string): UnauthorizedError {
  reply.header('www-authenticate', 'Bearer realm="metanode", MN1-Ed25519')
  // Closing after the answer spares the hub from draining a body it will not read.
  reply.header('connection', 'close')
  return new UnauthorizedError(message)
}

/** onRequest guard for admin-only routes: 401 for anonymous callers, 403 for principals. */
export { requireAdminIdentity as requireAdmin } from '../cage/index.js'
