/**
 * The HTTP CAGE as a Fastify plugin: the onRequest hook that enforces the policy on every
 * request (after the identity hook, before any body is read), audit entries for the
 * requests it refuses, and the admin routes of policies and audit:
 *
 *   GET    /v1/policies          the rules, in order
 *   PUT    /v1/policies          replace them all, atomically
 *   POST   /v1/policies          add one (at `position`, or last)
 *   GET    /v1/policies/:id      one rule
 *   PATCH  /v1/policies/:id      change or move one
 *   DELETE /v1/policies/:id      remove one
 *   GET    /v1/audit             entries, filtered, keyset-paged by seq
 *   GET    /v1/audit/verify      walk the hash chain
 *
 * The plugin is not encapsulated (the `skip-override` mark fastify-plugin sets), so its hook
 * applies to every route of the instance it is registered on, including the 404 handler.
 * Fastify runs onRequest hooks in the order they were added, across plugins: register the
 * cage after the identity hook (and after helmet and CORS, so refusals carry their headers)
 * but BEFORE the route plugins, or a route plugin's own guard (an admin check, say) runs
 * first and answers before the policy is consulted.
 */
import type { FastifyInstance, FastifyPluginCallback, FastifyRequest, onRequestHookHandler } from 'fastify'
import { ForbiddenError, NotFoundError, UnauthorizedError } from '../errors.js'
import { actorOf, type AuditLog } from './audit.js'
import { BlockedRequestLog, type BlockedLogLimits } from './blocked-log.js'
import { addressKey } from './cidr.js'
import { PolicyBlockedError, RateLimitedError } from './errors.js'
import type { PolicyStore } from './policy-store.js'
import type { Decision, FleetRateCounter } from './policy.js'
import {
  AUDIT_LIST_LIMIT_DEFAULT, auditPageSchema, auditQuerySchema, createBodySchema, patchBodySchema, replaceBodySchema,
  ruleIdParamsSchema, ruleListSchema, storedRuleSchema, verifyQuerySchema, verifyResultSchema,
  type AuditQueryString, type RuleIdParams, type VerifyQueryString,
} from './schemas.js'
import './identity.js'

declare module 'fastify' {
  interface FastifyContextConfig {
    /** Set on the cage's own admin routes: the admin reaches them whatever the rules say. */
    cageAdmin?: boolean
  }
}

export interface CageOptions {
  policies: PolicyStore
  audit: AuditLog
  /** Bounds on audit entries for refused requests (defaults: BLOCKED_LOG_LIMITS_DEFAULT). */
  blockedLog?: Partial<BlockedLogLimits>
  /**
   * A recorder of refused requests to share with other hooks (the identity hook's 401s, say),
   * so that one bound covers them all; its owner closes it. When absent, the plugin makes one
   * from `blockedLog` and closes it when the server closes.
   */
  blockedRequests?: BlockedRequestLog
  /** Register the admin routes; true by default. */
  routes?: boolean
  /**
   * Cluster mode: `rate_limit` rules counted once for the whole fleet. If it cannot answer,
   * the request is let through (limits fail open, as the gateway's own do) and logged.
   */
  fleetRateCounter?: FleetRateCounter
}

/** Longest request path kept in an audit entry, in characters. */
const AUDIT_PATH_CHARS_MAX = 512
const CONTROL = /[\u0000-\u001f\u007f]/g

const cagePlugin: FastifyPluginCallback<CageOptions> = (app, options, done) => {
  const { policies, audit } = options
  const recorder = options.blockedRequests ?? ownRecorder(app, audit, options.blockedLog)

  app.addHook('onRequest', function enforcePolicy (request, reply, next) {
    // The way back from a rule that locks everyone out: the admin always reaches the
    // routes that change rules and read the audit log.
    if (request.identity?.kind === 'admin' && request.routeOptions.config.cageAdmin === true) return next()
    const nowMs = Date.now()
    const decide = (decision: Decision): void => {
      switch (decision.type) {
        case 'allow':
          return next()
        case 'redirect':
          // Replying from the hook ends the request here; `next` must not be called too.
          reply.redirect(decision.location, 307)
          return
        case 'block':
          recordRefusal(recorder, request, 'request.blocked', decision.ruleId, { reason: decision.reason, status: 403 }, nowMs)
          return next(new PolicyBlockedError(decision.ruleId, decision.reason))
        case 'rate_limited': {
          const { ruleId, retryAfterS, max, windowMs } = decision
          recordRefusal(recorder, request, 'request.rate_limited', ruleId, { max, windowMs, retryAfterS, status: 429 }, nowMs)
          reply.header('retry-after', String(retryAfterS))
          return next(new RateLimitedError(ruleId, retryAfterS, `rate limit exceeded: at most ${max} requests per ${windowMs} ms; retry after ${retryAfterS} s`))
        }
      }
    }
    const fleet = options.fleetRateCounter
    if (!fleet) return decide(policies.evaluate(request, nowMs))
    policies.evaluateInFleet(request, nowMs, fleet).then(decide, err => {
      request.log.warn({ err }, 'the fleet\'s rate-limit counters cannot be reached; request let through')
      next()
    })
  })

  if (options.routes ?? true) app.register(cageRoutes, { policies, audit })
  done()
}

/** A recorder of refused requests that closes with the server. */
function ownRecorder (app: FastifyInstance, audit: AuditLog, limits: Partial<BlockedLogLimits> | undefined): BlockedRequestLog {
  const recorder = new BlockedRequestLog({
    ...limits,
    audit,
    onError: err => app.log.error({ err }, 'could not write the audit entry of a refused request'),
  })
  // onClose runs after in-flight requests finish, so the last refusals are in the summary.
  app.addHook('onClose', async () => {
    await recorder.close()
  })
  return recorder
}

/**
 * The plugin to register: `app.register(cage, { policies, audit })`, after the identity hook
 * and before the routes it guards.
 */
export const cage = Object.assign(cagePlugin, {
  [Symbol.for('skip-override')]: true,
  [Symbol.for('fastify.display-name')]: 'metanode-cage',
})

/** Who and where, for the audit entry of something a request did. */
export function requestAuditContext (request: FastifyRequest): { actor: string, source: string | null } {
  return { actor: actorOf(request.identity), source: request.ip ?? null }
}

/** onRequest guard for admin-only routes: 401 for anonymous callers, 403 for principals. */
export const requireAdminIdentity: onRequestHookHandler = function requireAdminIdentity (request, reply, done) {
  const kind = request.identity?.kind ?? 'anonymous'
  if (kind === 'admin') return done()
  if (kind === 'anonymous') {
    reply.header('www-authenticate', 'Bearer realm="metanode"')
    // Closing after the answer spares the hub from draining a body it will not read.
    reply.header('connection', 'close')
    return done(new UnauthorizedError('a valid admin token is required'))
  }
  done(new ForbiddenError('this route needs the admin token'))
}

function recordRefusal (blocked: BlockedRequestLog, request: FastifyRequest, action: string, ruleId: string, detail: Record<string, unknown>, nowMs: number): void {
  const { identity, ip, method, url } = request
  const actor = actorOf(identity)
  // The raw path, not the query, which may carry secrets. Node's parser refuses control
  // characters in a request target, but the audit log must never see one, so encode any.
  const query = url.indexOf('?')
  const path = (query === -1 ? url : url.slice(0, query)).slice(0, AUDIT_PATH_CHARS_MAX).replace(CONTROL, encodeURIComponent)
  // Counted per rule and client: a principal is one client wherever it connects from.
  const client = identity?.kind === 'principal' ? actor : ip === undefined ? 'unknown' : addressKey(ip)
  blocked.record({ key: `${ruleId} ${client}`, actor, action, target: path, source: ip ?? null, detail: { method, rule: ruleId, ...detail } }, nowMs)
}

interface RoutesOptions {
  policies: PolicyStore
  audit: AuditLog
}

const cageRoutes: FastifyPluginCallback<RoutesOptions> = (app, options, done) => {
  const { policies, audit } = options
  const config = { cageAdmin: true }
  // Route-level, so only these routes need the admin; checked before the body is read.
  const onRequest = requireAdminIdentity

  app.get('/v1/policies', {
    config, onRequest, schema: { tags: ['policies'], summary: 'The policy rules, in evaluation order', response: { 200: ruleListSchema } },
  }, async () => {
    return { rules: await policies.list() }
  })

  app.put<{ Body: { rules: unknown[] } }>('/v1/policies', {
    config, onRequest, schema: { tags: ['policies'], summary: 'Replaces all rules at once', body: replaceBodySchema, response: { 200: ruleListSchema } },
  }, async (request) => {
    const rules = await policies.replaceAll(request.body.rules, requestAuditContext(request), 'body.rules')
    request.log.info({ rules: rules.length }, 'policy rules replaced')
    return { rules }
  })

  app.post<{ Body: Record<string, unknown> & { position?: number } }>('/v1/policies', {
    config, onRequest, schema: { tags: ['policies'], summary: 'Adds a rule at `position` (last when absent)', body: createBodySchema, response: { 201: storedRuleSchema } },
  }, async (request, reply) => {
    const { position, ...rule } = request.body
    const stored = await policies.create(rule, position, requestAuditContext(request), 'body')
    request.log.info({ id: stored.id, position: stored.position }, 'policy rule added')
    return reply.code(201).header('location', `/v1/policies/${encodeURIComponent(stored.id)}`).send(stored)
  })

  app.get<{ Params: RuleIdParams }>('/v1/policies/:id', {
    config, onRequest, schema: { tags: ['policies'], summary: 'One rule', params: ruleIdParamsSchema, response: { 200: storedRuleSchema } },
  }, async (request) => {
    const rule = await policies.get(request.params.id)
    if (rule === undefined) throw notFound(request.params.id)
    return rule
  })

  app.patch<{ Params: RuleIdParams, Body: Record<string, unknown> }>('/v1/policies/:id', {
    config, onRequest, schema: { tags: ['policies'], summary: 'Changes or moves a rule', params: ruleIdParamsSchema, body: patchBodySchema, response: { 200: storedRuleSchema } },
  }, async (request) => {
    const rule = await policies.update(request.params.id, request.body, requestAuditContext(request), 'body')
    request.log.info({ id: rule.id }, 'policy rule changed')
    return rule
  })

  app.delete<{ Params: RuleIdParams }>('/v1/policies/:id', {
    config, onRequest, schema: { tags: ['policies'], summary: 'Removes a rule', params: ruleIdParamsSchema, response: { 200: storedRuleSchema } },
  }, async (request) => {
    const rule = await policies.delete(request.params.id, requestAuditContext(request))
    request.log.info({ id: rule.id }, 'policy rule removed')
    return rule
  })

  app.get<{ Querystring: AuditQueryString }>('/v1/audit', {
    config, onRequest, schema: { tags: ['audit'], summary: 'Audit entries, filtered, paged by seq', querystring: auditQuerySchema, response: { 200: auditPageSchema } },
  }, async (request) => {
    const q = request.query
    const limit = q.limit === undefined ? AUDIT_LIST_LIMIT_DEFAULT : Number(q.limit)
    const order = q.order ?? 'asc'
    // One row more than asked tells whether another page exists, without a second query.
    const rows = await audit.list({
      action: q.action,
      actor: q.actor,
      target: q.target,
      since: optionalNumber(q.since),
      until: optionalNumber(q.until),
      after: optionalNumber(q.after),
      before: optionalNumber(q.before),
      order,
      limit: limit + 1,
    })
    const items = rows.slice(0, limit)
    return { items, next: rows.length > limit ? items[items.length - 1].seq : null }
  })

  app.get<{ Querystring: VerifyQueryString }>('/v1/audit/verify', {
    config, onRequest, schema: { tags: ['audit'], summary: 'Walks the hash chain; reports the first broken entry', querystring: verifyQuerySchema, response: { 200: verifyResultSchema } },
  }, async (request, reply) => {
    const { anchorSeq, anchorHash } = request.query
    const anchor = anchorSeq !== undefined && anchorHash !== undefined ? { seq: Number(anchorSeq), hash: anchorHash } : undefined
    reply.header('cache-control', 'no-store')
    const result = await audit.verify({ anchor })
    if (!result.ok) request.log.warn({ brokenAt: result.brokenAt, reason: result.reason }, 'audit chain is broken')
    return result
  })

  done()
}

function notFound (id: string): NotFoundError {
  return new NotFoundError(`no policy rule with id ${JSON.stringify(id)}`)
}

function optionalNumber (value: string | undefined): number | undefined {
  return value === undefined ? undefined : Number(value)
}
