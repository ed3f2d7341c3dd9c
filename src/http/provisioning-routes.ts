/**
 * Fleet provisioning by claim: an admin makes a provisioning token (role, uses, expiry);
 * a device enrols itself with `POST /v1/enroll`, without the admin token. Enrolment by
 * token is rate-limited per address, since it is open to anonymous callers.
 */
import type { FastifyPluginCallback } from 'fastify'
import type { ProvisioningStore } from '../store/index.js'
import { NAME_CHARS_MAX, ROLES } from '../store/index.js'
import { requireAdmin } from './identity.js'
import { audited } from './audited.js'
import type { AuditLog } from '../cage/index.js'
import { principalSchema } from './schemas.js'

export interface ProvisioningRoutesOptions {
  provisioning: ProvisioningStore
  /** Enrolments by token allowed per address per minute. */
  enrollPerMinute: number
  /** Where tokens and self-enrolments are recorded. */
  audit?: AuditLog
}

/** Longest a token may live: a year, in ms. */
const TOKEN_LIFETIME_MS_MAX = 365 * 24 * 3600 * 1000
const TOKEN_LIFETIME_MS_DEFAULT = 24 * 3600 * 1000

const tokenSchema = {
  type: 'object',
  required: ['id', 'role', 'name', 'usesMax', 'uses', 'expires', 'created', 'revoked'],
  properties: {
    id: { type: 'string' },
    role: { type: 'string', enum: [...ROLES] },
    name: { type: ['string', 'null'] },
    usesMax: { type: 'integer' },
    uses: { type: 'integer' },
    expires: { type: 'integer' },
    created: { type: 'integer' },
    revoked: { type: ['integer', 'null'] },
  },
} as const

const createTokenBody = {
  type: 'object',
  required: ['role'],
  additionalProperties: false,
  properties: {
    role: { type: 'string', enum: [...ROLES] },
    name: { type: 'string', minLength: 1, maxLength: NAME_CHARS_MAX },
    usesMax: { type: 'integer', minimum: 1, maximum: 1_000_000 },
    expiresInMs: { type: 'integer', minimum: 1_000, maximum: TOKEN_LIFETIME_MS_MAX },
  },
} as const

const enrollBody = {
  type: 'object',
  required: ['token', 'publicKey'],
  additionalProperties: false,
  properties: {
    token: { type: 'string', minLength: 16, maxLength: 128 },
    publicKey: { type: 'string', pattern: '^[0-9a-fA-F]{64}$' },
    name: { type: 'string', minLength: 1, maxLength: NAME_CHARS_MAX },
  },
} as const

interface CreateTokenBody { role: typeof ROLES[number], name?: string, usesMax?: number, expiresInMs?: number }
interface EnrollBody { token: string, publicKey: string, name?: string }

export const provisioningRoutes: FastifyPluginCallback<ProvisioningRoutesOptions> = (app, options, done) => {
  const { provisioning } = options

  app.register((admin, _opts, next) => {
    admin.addHook('onRequest', requireAdmin)
    admin.post<{ Body: CreateTokenBody }>('/v1/provisioning-tokens', {
      schema: {
        tags: ['provisioning'],
        body: createTokenBody,
        response: { 201: { ...tokenSchema, required: [...tokenSchema.required, 'token'], properties: { ...tokenSchema.properties, token: { type: 'string' } } } },
      },
    }, async (request, reply) => {
      const { role, name, usesMax = 1, expiresInMs = TOKEN_LIFETIME_MS_DEFAULT } = request.body
      const nowMs = Date.now()
      const { token, record } = await audited(options.audit, request, 'token.create',
        () => provisioning.create({ role, name: name ?? null, usesMax, expires: nowMs + expiresInMs, nowMs }),
        created => ({ target: created.record.id, detail: { role, usesMax, expires: created.record.expires } }))
      return reply.code(201).send({ ...record, token })
    })
    admin.get('/v1/provisioning-tokens', {
      schema: { tags: ['provisioning'], response: { 200: { type: 'object', properties: { items: { type: 'array', items: tokenSchema } } } } },
    }, async () => ({ items: await provisioning.list() }))
    admin.delete<{ Params: { id: string } }>('/v1/provisioning-tokens/:id', {
      schema: {
        tags: ['provisioning'],
        params: { type: 'object', required: ['id'], properties: { id: { type: 'string', maxLength: 64 } } },
        response: { 200: tokenSchema },
      },
    }, async request => {
      return await audited(options.audit, request, 'token.revoke', () => provisioning.revoke(request.params.id), token => ({ target: token.id }))
    })
    next()
  })

  app.post<{ Body: EnrollBody }>('/v1/enroll', {
    config: { rateLimit: { max: options.enrollPerMinute, timeWindow: 60_000 } },
    schema: { tags: ['provisioning'], body: enrollBody, response: { 201: principalSchema } },
  }, async (request, reply) => {
    const { principal, token } = await audited(options.audit, request, 'principal.enrol',
      () => provisioning.redeem(request.body.token, { publicKey: request.body.publicKey, name: request.body.name }),
      r => ({ target: r.principal.id, detail: { role: r.principal.role, provisioningToken: r.token.id } }))
    request.log.info({ id: principal.id, role: principal.role, tokenId: token.id }, 'principal enrolled by provisioning token')
    return reply.code(201).header('location', `/v1/devices/${principal.id}`).send(principal)
  })

  done()
}
