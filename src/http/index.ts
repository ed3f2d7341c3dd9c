/**
 * The hub's HTTP side: the Fastify server and the admin token it is guarded by.
 */
export { createHttpServer, BODY_LIMIT_BYTES_DEFAULT, REQUEST_TIMEOUT_MS_DEFAULT, type HttpServerOptions } from './server.js'
export {
  loadOrCreateAdminToken, tokenMatches, ADMIN_TOKEN_FILE, ADMIN_TOKEN_BYTES, ADMIN_TOKEN_CHARS_MIN,
  type AdminTokenOptions,
} from './admin-token.js'
export { LIST_LIMIT_DEFAULT, LIST_LIMIT_MAX } from './schemas.js'
export type { ErrorBody } from './error-reply.js'
