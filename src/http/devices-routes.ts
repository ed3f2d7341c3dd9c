/**
 * The enrolment API of protocol-v1 §8 under /v1/devices. Every route here, and every
 * unknown path under the prefix, needs the admin token.
 */
import type { FastifyBaseLogger, FastifyPluginCallback } from 'fastify'
import { NotFoundError } from '../errors.js'
import { NAME_CHARS_MAX, type Principal, type PrincipalStore } from '../store/index.js'
import { requireAdmin } from './identity.js'
import { audited } from './audited.js'
import type { AuditLog } from '../cage/index.js'
import { routeNotFound } from './error-reply.js'
import {
  enrolBodySchema, idParamsSchema, listQuerySchema, principalListSchema, principalSchema,
  LIST_LIMIT_DEFAULT, type EnrolBody, type IdParams, type ListQuery,
} from './schemas.js'

export interface DevicesRoutesOptions {
  principals: PrincipalStore
  /** Where enrolments, renames and revocations are recorded. */
  audit?: AuditLog
  /** Told of every successful DELETE, so the hub can close the principal's live session. */
  onRevoke?: (id: string) => void | Promise<void>
}

export const devicesRoutes: FastifyPluginCallback<DevicesRoutesOptions> = (app, options, done) => {
  const { principals, onRevoke, audit } = options
  app.addHook('onRequest', requireAdmin)

  app.post<{ Body: EnrolBody }>('/', {
    schema: { body: enrolBodySchema, response: { 201: principalSchema } },
  }, async (request, reply) => {
    const { publicKey, role, name } = request.body
    const principal = await audited(audit, request, 'principal.enrol', () => principals.create({ publicKey, role, name: name ?? null }),
      p => ({ target: p.id, detail: { role: p.role, name: p.name } }))
    request.log.info({ id: principal.id, role }, 'principal enrolled')
    return reply.code(201).header('location', `/v1/devices/${principal.id}`).send(principal)
  })

  app.get<{ Querystring: ListQuery }>('/', {
    schema: { querystring: listQuerySchema, response: { 200: principalListSchema } },
  }, async (request) => {
    const { role, revoked, after } = request.query
    const limit = request.query.limit === undefined ? LIST_LIMIT_DEFAULT : Number(request.query.limit)
    // One row more than asked tells whether another page exists, without a second query.
    const rows = await principals.list({
      role,
      revoked: revoked === undefined ? undefined : revoked === 'true',
      limit: limit + 1,
      after,
    })
    const items = rows.slice(0, limit)
    return { items, next: rows.length > limit ? items[items.length - 1].id : null }
  })

  app.get<{ Params: IdParams }>('/:id', {
    schema: { params: idParamsSchema, response: { 200: principalSchema } },
  }, async (request) => {
    return found(await principals.get(request.params.id), request.params.id)
  })

  app.patch<{ Params: IdParams, Body: { name: string | null } }>('/:id', {
    schema: {
      params: idParamsSchema,
      body: {
        type: 'object',
        required: ['name'],
        additionalProperties: false,
        properties: { name: { anyOf: [{ type: 'string', minLength: 1, maxLength: NAME_CHARS_MAX }, { type: 'null' }] } },
      },
      response: { 200: principalSchema },
    },
  }, async request => {
    const principal = await audited(audit, request, 'principal.rename', () => principals.rename(request.params.id, request.body.name),
      p => ({ target: p.id, detail: { name: p.name } }))
    request.log.info({ id: principal.id }, 'principal renamed')
    return principal
  })

  app.delete<{ Params: IdParams }>('/:id', {
    schema: { params: idParamsSchema, response: { 200: principalSchema } },
  }, async (request) => {
    const { id } = request.params
    const { principal, changed } = await audited(audit, request, 'principal.revoke', () => principals.revoke(id, Date.now()),
      r => ({ target: id, detail: { changed: r.changed } }))
    if (changed) request.log.info({ id }, 'principal revoked')
    // Called on a repeated DELETE too: closing sessions is idempotent, and it also ends one
    // that slipped in around the first revocation. The revocation is committed already, so
    // a failing hook is logged, not reported to the client.
    notifyRevoked(request.log, onRevoke, id)
    return principal
  })

  // Unknown paths under the prefix pass the token check first, so they reveal nothing.
  app.setNotFoundHandler(routeNotFound)

  done()
}

function found (principal: Principal | undefined, id: string): Principal {
  if (principal === undefined) throw new NotFoundError(`no principal with id ${JSON.stringify(id)}`)
  return principal
}

function notifyRevoked (log: FastifyBaseLogger, onRevoke: DevicesRoutesOptions['onRevoke'], id: string): void {
  if (onRevoke === undefined) return
  const fail = (err: unknown) => log.error({ err, id }, 'onRevoke failed')
  try {
    const result = onRevoke(id)
    if (result !== undefined && typeof result.then === 'function') result.then(undefined, fail)
  } catch (err) {
    fail(err)
  }
}
