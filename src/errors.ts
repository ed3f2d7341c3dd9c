/**
 * Coded errors of the hub, in one place (the Fastify `FST_ERR_*` pattern): each has a
 * stable code, a message and, where it reaches HTTP, a status.
 */
export class MetanodeError extends Error {
  readonly code: string
  readonly statusCode: number

  constructor (code: string, message: string, statusCode = 500, options?: { cause?: unknown }) {
    super(message, options)
    this.name = 'MetanodeError'
    this.code = code
    this.statusCode = statusCode
  }
}

export class ConfigError extends MetanodeError {
  constructor (message: string) {
    super('MN_ERR_CONFIG', message, 500)
    this.name = 'ConfigError'
  }
}

export class NotFoundError extends MetanodeError {
  constructor (message: string) {
    super('MN_ERR_NOT_FOUND', message, 404)
    this.name = 'NotFoundError'
  }
}

export class ConflictError extends MetanodeError {
  constructor (message: string) {
    super('MN_ERR_CONFLICT', message, 409)
    this.name = 'ConflictError'
  }
}

export class BadRequestError extends MetanodeError {
  constructor (message: string) {
    super('MN_ERR_BAD_REQUEST', message, 400)
    this.name = 'BadRequestError'
  }
}

export class UnauthorizedError extends MetanodeError {
  constructor (message = 'a valid admin token is required') {
    super('MN_ERR_UNAUTHORIZED', message, 401)
    this.name = 'UnauthorizedError'
  }
}

export class PayloadTooLargeError extends MetanodeError {
  constructor (message: string) {
    super('MN_ERR_PAYLOAD_TOO_LARGE', message, 413)
    this.name = 'PayloadTooLargeError'
  }
}

export class UnsupportedMediaTypeError extends MetanodeError {
  constructor (message = 'the request body must be application/json') {
    super('MN_ERR_UNSUPPORTED_MEDIA_TYPE', message, 415)
    this.name = 'UnsupportedMediaTypeError'
  }
}

/** The database was written by a newer hub, or a migration failed; the hub must not start on it. */
export class StoreSchemaError extends MetanodeError {
  constructor (message: string, options?: { cause?: unknown }) {
    super('MN_ERR_STORE_SCHEMA', message, 500, options)
    this.name = 'StoreSchemaError'
  }
}

/** What an HTTP client sees for a bug of ours: the detail goes to the log, never to the client. */
export class InternalError extends MetanodeError {
  constructor (message = 'internal error') {
    super('MN_ERR_INTERNAL', message, 500)
    this.name = 'InternalError'
  }
}

export class ForbiddenError extends MetanodeError {
  constructor (message: string) {
    super('MN_ERR_FORBIDDEN', message, 403)
    this.name = 'ForbiddenError'
  }
}

/** A part the request needs (the fleet's Redis, say) cannot be reached; the client may retry. */
export class ServiceUnavailableError extends MetanodeError {
  constructor (message: string, options?: { cause?: unknown }) {
    super('MN_ERR_UNAVAILABLE', message, 503, options)
    this.name = 'ServiceUnavailableError'
  }
}
