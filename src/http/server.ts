/**
 * The hub's HTTP server, built but not listening: the hub calls `listen` and `close`, and
 * owns the store, which is why no `onClose` hook here closes anything.
 */
import Fastify, { type FastifyInstance, type FastifyReply } from 'fastify'
import type { Logger } from 'pino'
import type { Store } from '../store/index.js'
import { devicesRoutes } from './devices-routes.js'
import { errorBody, routeNotFound, toMetanodeError } from './error-reply.js'
import { healthRoute } from './health-route.js'
import { stateRoutes, identityAuthorizer, type StateAuthorizer } from './state-routes.js'
import type { StateService } from '../state/service.js'
import { installIdentity } from './identity.js'
import { meRoute } from './me-route.js'
import { provisioningRoutes } from './provisioning-routes.js'
import { streamRoute, type ListenBridge } from './stream-route.js'
import { messagesRoute, type SendToDevice } from './messages-route.js'
import { registerGuards, GUARD_DEFAULTS, type GuardOptions } from './guards.js'
import { cage, type AuditLog, type PolicyStore } from '../cage/index.js'
import { treeRoutes } from '../zklock/tree-routes.js'
import type { TreeStore } from '../zklock/tree-store.js'
import { claimRoutes } from '../zklock/claim-routes.js'
import type { ClaimService } from '../zklock/claims.js'
import { PrincipalDirectory } from '../auth/principal-keys.js'
import { ReplayGuard } from '../protocol/index.js'
import type { FleetIds } from '../cluster/fleet-ids.js'
import type { FleetRateCounter } from '../cage/policy.js'
import { DEFAULT_CONFIG } from '../config.js'

/** Largest request body, in bytes. Enrolment bodies are about 150 bytes. */
export const BODY_LIMIT_BYTES_DEFAULT = 64 * 1024
/** Time a client has to send a whole request, in ms (upgraded WebSocket connections are not affected). */
export const REQUEST_TIMEOUT_MS_DEFAULT = 30_000

export interface HttpServerOptions extends Partial<GuardOptions> {
  store: Pick<Store, 'principals' | 'provisioning'>
  adminToken: string
  /** Any pino logger; the server logs through a child bound to `component: 'http'`. */
  log: Logger
  /** GET /healthz answers 503 until this returns true; always ready when absent. */
  isReady?: () => boolean
  /** Called after every successful DELETE /v1/devices/{id}. */
  onRevoke?: (id: string) => void | Promise<void>
  bodyLimitBytes?: number
  requestTimeoutMs?: number
  /** The principals' key cache shared with the broker, so a revocation reaches both at once. */
  principalKeys?: PrincipalDirectory
  /** Nonces of principal-signed requests; one is made when absent. */
  requestNonces?: ReplayGuard
  /** Cluster mode: the fleet's record of request nonces. */
  fleetNonces?: FleetIds
  /** Cluster mode: the policy engine's rate limits counted for the whole fleet. */
  fleetRateCounter?: FleetRateCounter
  /** Allowed clock skew of principal-signed requests, in ms. */
  skewMs?: number
  /** In-process bridge subscription behind GET /v1/stream (absent: no stream route). */
  listenBridge?: ListenBridge
  /** Publishes to a device's down topic, behind POST /v1/devices/{id}/messages. */
  sendToDevice?: SendToDevice
  /** The policy engine's rules (HTTP CAGE); with `audit`, every request passes them. */
  policies?: PolicyStore
  /** The hash-chained audit log of admin actions, enrolments and refused requests. */
  audit?: AuditLog
  /** The ZKLock identity tree: commitments, roots and leaves under /v1/zk. */
  zkTree?: TreeStore
  /** ZKLock anonymous claims under /v1/zk/claims. */
  zkClaims?: ClaimService
  /** Anonymous claims per address per minute. */
  claimsPerMinute?: number
  /** Device state documents: served under /v1/devices/:id/state when given. */
  state?: StateService
  /** Who may read and write state documents; the admin token alone when absent. */
  authorizeState?: StateAuthorizer
}

export function createHttpServer (options: HttpServerOptions): FastifyInstance {
  const bodyLimitBytes = options.bodyLimitBytes ?? BODY_LIMIT_BYTES_DEFAULT
  const log = httpLogger(options.log)
  const app = Fastify({
    loggerInstance: log,
    bodyLimit: bodyLimitBytes,
    requestTimeout: options.requestTimeoutMs ?? REQUEST_TIMEOUT_MS_DEFAULT,
    ajv: {
      // Fastify's defaults coerce types and silently drop unknown properties; the API
      // contract is that both are a 400.
      customOptions: { coerceTypes: false, removeAdditional: false, allErrors: false },
    },
    frameworkErrors (err, request, reply) {
      const coded = toMetanodeError(err, bodyLimitBytes)
      // Typed for the route generics, which a bad URL never reached.
      ;(reply as FastifyReply).code(coded.statusCode).send(errorBody(coded))
    },
  })

  // The API speaks JSON only, so any other body is a 415 rather than a string for the
  // schema to puzzle over. Fastify's JSON parser refuses an empty body; a DELETE sent with a
  // JSON content type and no body is common from clients and means "no body". A POST
  // without one still fails its schema, so nothing is lost.
  const parseJson = app.getDefaultJsonParser('error', 'error')
  app.removeAllContentTypeParsers()
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (request, body, done) => {
    const text = body as string // parseAs: 'string'
    if (text.length === 0) return done(null, undefined)
    parseJson(request, text, done)
  })

  app.setErrorHandler((err, request, reply) => {
    const coded = toMetanodeError(err, bodyLimitBytes)
    if (coded.statusCode >= 500) request.log.error({ err }, 'request failed')
    reply.code(coded.statusCode).send(errorBody(coded))
  })
  app.setNotFoundHandler(routeNotFound)

  const skewMs = options.skewMs ?? DEFAULT_CONFIG.protocol.skewMs
  installIdentity(app as unknown as FastifyInstance, {
    adminToken: options.adminToken,
    principals: options.principalKeys ?? new PrincipalDirectory(id => options.store.principals.get(id)),
    nonces: options.requestNonces ?? new ReplayGuard({
      windowMs: 2 * skewMs,
      perKeyMax: DEFAULT_CONFIG.protocol.replayIdsPerPrincipalMax,
      totalMax: DEFAULT_CONFIG.protocol.replayIdsTotalMax,
    }),
    fleetNonces: options.fleetNonces,
    skewMs,
  })
  registerGuards(app as unknown as FastifyInstance, options)
  // The policy engine goes after identity and the guards (so refusals carry security
  // headers) and before every route, so that its rules run ahead of the routes' own checks.
  if (options.policies && options.audit) app.register(cage, { policies: options.policies, audit: options.audit, fleetRateCounter: options.fleetRateCounter })
  app.register(healthRoute, {
    isReady: options.isReady ?? (() => true),
    readinessChecks: { database: async () => { await options.store.principals.count() } },
  })
  app.register(meRoute, { principals: options.store.principals })
  app.register(provisioningRoutes, {
    provisioning: options.store.provisioning,
    enrollPerMinute: options.enrollPerMinute ?? GUARD_DEFAULTS.enrollPerMinute,
    audit: options.audit,
  })
  if (options.zkTree) app.register(treeRoutes, { tree: options.zkTree })
  if (options.zkClaims) app.register(claimRoutes, { claims: options.zkClaims, claimsPerMinute: options.claimsPerMinute })
  if (options.listenBridge) app.register(streamRoute, { listenBridge: options.listenBridge })
  if (options.sendToDevice) app.register(messagesRoute, { sendToDevice: options.sendToDevice })
  app.register(devicesRoutes, {
    prefix: '/v1/devices',
    principals: options.store.principals,
    onRevoke: options.onRevoke,
    audit: options.audit,
  })
  if (options.state) {
    app.register(stateRoutes, {
      prefix: '/v1/devices/:id/state',
      state: options.state,
      authorize: options.authorizeState ?? identityAuthorizer,
    })
  }
  // Fastify types the instance by its logger's class; callers need only the base logger
  // interface, and the plain type is what other modules can name.
  return app as unknown as FastifyInstance
}

/**
 * A child logger that redacts credentials itself, whatever logger the caller passed, and
 * binds the component only once if the caller bound it already.
 */
function httpLogger (log: Logger): Logger {
  const bindings = log.bindings()
  return log.child(bindings.component === undefined ? { component: 'http' } : {}, {
    redact: {
      paths: ['req.headers.authorization', 'headers.authorization', 'authorization', 'adminToken', 'token'],
      censor: '[redacted]',
    },
  })
}
