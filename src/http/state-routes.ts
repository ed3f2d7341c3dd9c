/**
 * Device state documents over HTTP (docs/protocol.md §14.1), registered under
 * /v1/devices/:id/state:
 * - GET → 200 with the whole document;
 * - PATCH `{"desired": object, "version"?: integer}` → 200 with the document after a JSON
 *   merge patch of desired (null deletes a key), 409 `{..., "version": current}` when the
 *   document is not at `version`.
 * Who may do what is the `authorize` option's to decide; it runs in onRequest, before the
 * body is read. Devices change reported over MQTT only.
 */
import type { FastifyPluginCallback, FastifyRequest } from 'fastify'
import { ForbiddenError, UnauthorizedError } from '../errors.js'
import type { StateDocument, StateService } from '../state/service.js'
import { StateVersionConflictError } from '../state/errors.js'
import { errorBody } from './error-reply.js'

export type StateAccess = 'read' | 'write'

/**
 * Decides whether a request may read or write a device's state; throws a coded error
 * (UnauthorizedError 401, ForbiddenError 403) to refuse. Runs before the body is read, and
 * before the id is known to exist: it must not reveal which ids do.
 */
export type StateAuthorizer = (request: FastifyRequest, deviceId: string, access: StateAccess) => void | Promise<void>

export interface StateRoutesOptions {
  state: StateService
  authorize: StateAuthorizer
}

export interface StateParams {
  id: string
}

export interface PatchStateBody {
  desired: Record<string, unknown>
  version?: number
}

const paramsSchema = {
  type: 'object',
  required: ['id'],
  properties: {
    id: { type: 'string' },
  },
} as const

export const patchStateBodySchema = {
  type: 'object',
  required: ['desired'],
  additionalProperties: false,
  properties: {
    // What is inside is checked by the service (JSON values, depth, size): its messages
    // name the offending path.
    desired: { type: 'object' },
    /** The version the change is meant for: 409 unless the document is at it. */
    version: { type: 'integer', minimum: 0, maximum: Number.MAX_SAFE_INTEGER },
  },
} as const

const section = { type: 'object', additionalProperties: true } as const

export const stateDocumentSchema = {
  type: 'object',
  required: ['desired', 'reported', 'delta', 'version', 'meta'],
  additionalProperties: false,
  properties: {
    desired: section,
    reported: section,
    delta: section,
    version: { type: 'integer' },
    meta: {
      type: 'object',
      required: ['desired', 'reported'],
      additionalProperties: false,
      properties: { desired: section, reported: section },
    },
  },
} as const

export const stateConflictSchema = {
  type: 'object',
  required: ['statusCode', 'code', 'error', 'message', 'version'],
  additionalProperties: false,
  properties: {
    statusCode: { type: 'integer' },
    code: { type: 'string' },
    error: { type: 'string' },
    message: { type: 'string' },
    /** The document's current version. */
    version: { type: 'integer' },
  },
} as const

export const stateRoutes: FastifyPluginCallback<StateRoutesOptions> = (app, options, done) => {
  const { state, authorize } = options

  app.addHook('onRequest', async (request, reply) => {
    const { id } = request.params as StateParams
    try {
      await authorize(request, id, request.method === 'GET' || request.method === 'HEAD' ? 'read' : 'write')
    } catch (err) {
      if (err instanceof UnauthorizedError) {
        reply.header('www-authenticate', 'Bearer realm="metanode"')
        // Closing after the answer spares the hub from draining a body it will not read.
        reply.header('connection', 'close')
      }
      throw err
    }
  })

  app.get<{ Params: StateParams }>('', {
    schema: { tags: ['state'], summary: 'The device\'s whole state document', params: paramsSchema, response: { 200: stateDocumentSchema } },
  }, async (request): Promise<StateDocument> => await state.get(request.params.id))

  app.patch<{ Params: StateParams, Body: PatchStateBody }>('', {
    schema: {
      tags: ['state'],
      summary: 'Merges a JSON merge patch into desired; 409 unless the document is at `version`',
      params: paramsSchema,
      body: patchStateBodySchema,
      response: { 200: stateDocumentSchema, 409: stateConflictSchema },
    },
  }, async (request, reply) => {
    const { id } = request.params
    try {
      const document = await state.patchDesired(id, request.body.desired, request.body.version)
      request.log.info({ deviceId: id, version: document.version }, 'desired state changed')
      return document
    } catch (err) {
      if (!(err instanceof StateVersionConflictError)) throw err
      return reply.code(409).send({ ...errorBody(err), version: err.currentVersion })
    }
  })

  done()
}

/** The authorizer the hub starts with: the admin token may read and write every document. */
/**
 * Who may do what with a state document, by the identity the request was signed or
 * tokened with: the admin everything; a service reads and changes desired of any device
 * (backends steer devices); a device reads its own document only (it reports over MQTT);
 * anyone else nothing.
 */
export const identityAuthorizer: StateAuthorizer = (request, deviceId, access) => {
  const { identity } = request
  if (identity.kind === 'admin') return
  if (identity.kind === 'anonymous') throw new UnauthorizedError('state documents need the admin token or a principal signature')
  if (identity.role === 'service') return
  if (identity.role === 'device' && identity.id === deviceId && access === 'read') return
  throw new ForbiddenError(identity.role === 'device' && identity.id === deviceId
    ? 'a device changes its state by reporting over MQTT'
    : 'a principal may only read its own state document')
}
