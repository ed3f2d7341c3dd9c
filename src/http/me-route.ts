/**
 * GET /v1/me: who the hub takes the caller for. An SDK calls it to check its credentials;
 * a principal gets its own record.
 */
import type { FastifyPluginCallback } from 'fastify'
import type { PrincipalStore } from '../store/index.js'

export interface MeRouteOptions {
  principals: PrincipalStore
}

export const meRoute: FastifyPluginCallback<MeRouteOptions> = (app, options, done) => {
  app.get('/v1/me', async request => {
    const { identity } = request
    if (identity.kind !== 'principal') return { kind: identity.kind }
    return { kind: 'principal', principal: await options.principals.get(identity.id) }
  })
  done()
}
