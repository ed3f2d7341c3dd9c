/**
 * What guards every route of the gateway besides identity and policy: security headers
 * (helmet), CORS for browser apps (off unless origins are configured), rate limits per
 * principal and per address, and the OpenAPI document with its UI at /docs.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify'
import helmet from '@fastify/helmet'
import cors from '@fastify/cors'
import rateLimit from '@fastify/rate-limit'
import swagger from '@fastify/swagger'
import swaggerUi from '@fastify/swagger-ui'
import type { Redis } from 'ioredis'

export interface GuardOptions {
  /** Requests per minute per principal, and per address for anonymous callers; the admin is not limited. */
  rateLimitPerMinute: number
  /** Enrolments by provisioning token per address per minute. */
  enrollPerMinute: number
  /** Origins allowed to call the API from a browser; none by default. */
  corsOrigins: string[]
  /**
   * Cluster mode: the fleet's Redis, where every rate limit (this global one and the routes'
   * own) is counted, so that a client spreading its requests over processes gets no more.
   */
  rateLimitRedis?: { client: Redis, keyPrefix: string }
}

export const GUARD_DEFAULTS: Readonly<GuardOptions> = Object.freeze({
  rateLimitPerMinute: 1_200,
  enrollPerMinute: 30,
  corsOrigins: [],
})

export function registerGuards (app: FastifyInstance, options: Partial<GuardOptions>): void {
  const settings = { ...GUARD_DEFAULTS, ...stripUndefined(options) }
  app.register(helmet, {
    // The API answers JSON; the OpenAPI UI's own page sets its CSP (staticCSP below).
    contentSecurityPolicy: { directives: { defaultSrc: ["'self'"], scriptSrc: ["'self'"], styleSrc: ["'self'", "'unsafe-inline'"], imgSrc: ["'self'", 'data:'] } },
  })
  app.register(cors, { origin: settings.corsOrigins.length > 0 ? settings.corsOrigins : false })
  app.register(rateLimit, {
    global: true,
    max: settings.rateLimitPerMinute,
    timeWindow: 60_000,
    // Bounded in-memory store (the least recently seen keys go first), or the fleet's Redis.
    cache: 10_000,
    // While the fleet's Redis is out the limits fail open rather than failing every request
    // (/healthz included); what needs Redis for safety (signed requests' nonces) still refuses.
    ...(settings.rateLimitRedis ? { redis: settings.rateLimitRedis.client, nameSpace: `${settings.rateLimitRedis.keyPrefix}rate-limit:`, skipOnError: true } : {}),
    keyGenerator: rateLimitKey,
    allowList: request => request.identity?.kind === 'admin',
  })
  app.register(swagger, {
    openapi: {
      info: { title: 'Metanode hub API', version: '1', description: 'The HTTP side of the hub: enrolment, provisioning, state documents, policies and audit. See docs/protocol.md.' },
      components: {
        securitySchemes: {
          adminToken: { type: 'http', scheme: 'bearer' },
          principalSignature: { type: 'apiKey', in: 'header', name: 'Authorization', description: 'MN1-Ed25519 id=…, ts=…, nonce=…, sig=… (docs/protocol.md §8.1)' },
        },
      },
      security: [{ adminToken: [] }, { principalSignature: [] }],
    },
  })
  app.register(swaggerUi, { routePrefix: '/docs', staticCSP: true })
}

/** Principals are limited by id wherever they call from; anonymous callers by address. */
function rateLimitKey (request: FastifyRequest): string {
  const identity = request.identity
  return identity?.kind === 'principal' ? `p:${identity.id}` : `a:${request.ip}`
}

function stripUndefined<T extends object> (value: T): Partial<T> {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as Partial<T>
}
