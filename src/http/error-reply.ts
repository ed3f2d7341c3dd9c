/**
 * Every error the HTTP API sends, in Fastify's shape `{ statusCode, code, error, message }`
 * with our MN_ERR_* codes: coded errors pass through, Fastify's own are translated, and
 * anything else is a 500 whose detail stays in the log.
 */
import { STATUS_CODES } from 'node:http'
import type { FastifyError, FastifyRequest } from 'fastify'
import {
  BadRequestError, InternalError, MetanodeError, NotFoundError, PayloadTooLargeError, ServiceUnavailableError, UnsupportedMediaTypeError,
} from '../errors.js'
import { databaseUnavailable } from '../store/sql.js'
import { PATTERN_DESCRIPTIONS } from './schemas.js'

export interface ErrorBody {
  statusCode: number
  code: string
  error: string
  message: string
  /** A feature's own reason word, where it has one (a refused claim's `double_claim`, say). */
  reason?: string
}

export function errorBody (err: MetanodeError): ErrorBody {
  const body: ErrorBody = {
    statusCode: err.statusCode,
    code: err.code,
    error: STATUS_CODES[err.statusCode] ?? 'Error',
    message: err.message,
  }
  const reason = (err as { reason?: unknown }).reason
  if (typeof reason === 'string') body.reason = reason
  return body
}

/** A not-found handler: the error handler then answers with the usual JSON. */
export function routeNotFound (request: FastifyRequest): never {
  throw new NotFoundError(`route ${request.method} ${request.url.split('?')[0]} not found`)
}

/** The coded error to send for anything a route, hook or Fastify threw. */
export function toMetanodeError (err: unknown, bodyLimitBytes: number): MetanodeError {
  if (err instanceof MetanodeError) return err
  const fastifyError = err as Partial<FastifyError>
  if (Array.isArray(fastifyError.validation) && fastifyError.validation.length > 0) {
    return new BadRequestError(describeValidationError(fastifyError.validation[0], fastifyError.validationContext ?? 'request'))
  }
  switch (fastifyError.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return new PayloadTooLargeError(`the request body is larger than ${bodyLimitBytes} bytes`)
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return new UnsupportedMediaTypeError()
  }
  if (databaseUnavailable(err)) {
    // The database is down or busy (a PostgreSQL server restarting, say): worth a retry.
    return new ServiceUnavailableError('the database is unavailable; try again shortly', { cause: err })
  }
  const statusCode = fastifyError.statusCode ?? 500
  if (statusCode >= 400 && statusCode < 500 && typeof fastifyError.message === 'string') {
    // Fastify's client errors (invalid JSON, bad URL, content-length mismatch) explain
    // themselves; only the code is ours.
    return statusCode === 400
      ? new BadRequestError(fastifyError.message)
      : new MetanodeError('MN_ERR_BAD_REQUEST', fastifyError.message, statusCode)
  }
  return new InternalError()
}

interface ValidationIssue {
  keyword: string
  instancePath: string
  message?: string
  params: Record<string, unknown>
}

function describeValidationError (issue: ValidationIssue, context: string): string {
  const where = context + issue.instancePath.replaceAll('/', '.')
  switch (issue.keyword) {
    case 'additionalProperties':
      return `${where} has an unknown property ${JSON.stringify(issue.params.additionalProperty)}`
    case 'required':
      return `${where} is missing the required property ${JSON.stringify(issue.params.missingProperty)}`
    case 'enum':
      return `${where} must be one of ${(issue.params.allowedValues as unknown[]).map(String).join(', ')}`
    case 'pattern': {
      const description = PATTERN_DESCRIPTIONS[String(issue.params.pattern)]
      if (description !== undefined) return `${where} ${description}`
    }
  }
  return `${where} ${issue.message ?? 'is invalid'}`
}
