/**
 * GET /healthz of protocol-v1 §9: 200 once the hub accepts connections, 503 before.
 * Unauthenticated, so that load balancers and start scripts can poll it.
 */
import type { FastifyPluginCallback } from 'fastify'

export interface HealthRouteOptions {
  isReady: () => boolean
  /** Deeper checks for /readyz (the database answers, say); each throws when not ready. */
  readinessChecks?: Record<string, () => void | Promise<void>>
}

const healthSchema = {
  type: 'object',
  required: ['status'],
  properties: { status: { type: 'string', enum: ['ok', 'starting'] } },
} as const

export const healthRoute: FastifyPluginCallback<HealthRouteOptions> = (app, options, done) => {
  app.get('/healthz', {
    schema: { response: { 200: healthSchema, 503: healthSchema } },
  }, async (request, reply) => {
    reply.header('cache-control', 'no-store')
    if (!options.isReady()) return reply.code(503).send({ status: 'starting' })
    return { status: 'ok' }
  })

  // /readyz: for load balancers that must stop sending work to a hub that cannot do it.
  app.get('/readyz', {
    schema: {
      response: {
        200: { type: 'object', required: ['status', 'checks'], properties: { status: { type: 'string' }, checks: { type: 'object', additionalProperties: { type: 'string' } } } },
        503: { type: 'object', required: ['status', 'checks'], properties: { status: { type: 'string' }, checks: { type: 'object', additionalProperties: { type: 'string' } } } },
      },
    },
  }, async (request, reply) => {
    reply.header('cache-control', 'no-store')
    const checks: Record<string, string> = { listeners: options.isReady() ? 'ok' : 'starting' }
    for (const [name, check] of Object.entries(options.readinessChecks ?? {})) {
      try {
        await check()
        checks[name] = 'ok'
      } catch (err) {
        request.log.warn({ err, check: name }, 'readiness check failed')
        checks[name] = 'failing'
      }
    }
    const ready = Object.values(checks).every(value => value === 'ok')
    return reply.code(ready ? 200 : 503).send({ status: ready ? 'ready' : 'not ready', checks })
  })
  done()
}
