/**
 * Bearer authentication of the admin API. It runs as an `onRequest` hook, before Fastify
 * reads the body, so an unauthenticated client cannot make the hub parse anything.
 */
import type { onRequestHookHandler } from 'fastify'
import { UnauthorizedError } from '../errors.js'
import { tokenMatches } from './admin-token.js'

// RFC 6750 §2.1: the scheme is case-insensitive; the token is one run of non-space characters.
const BEARER = /^Bearer +(\S+) *$/i

export function requireAdminToken (adminToken: string): onRequestHookHandler {
  return function checkAdminToken (request, reply, done) {
    const match = BEARER.exec(request.headers.authorization ?? '')
    if (match === null || !tokenMatches(adminToken, match[1])) {
      reply.header('www-authenticate', 'Bearer realm="metanode"')
      // Closing the connection after the answer spares the hub from draining whatever
      // body an unauthenticated client keeps sending.
      reply.header('connection', 'close')
      done(new UnauthorizedError())
      return
    }
    done()
  }
}
