/**
 * GET /healthz of protocol-v1 §9: 200 once the hub accepts connections, 503 before.
 * Unauthenticated, so that load balancers and start scripts can poll it.
 */
import type { FastifyPluginCallback } from 'fastify'

export interface HealthRouteOptions {
  isReady: () => boolean
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
  done()
}
