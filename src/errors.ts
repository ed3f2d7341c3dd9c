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
