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
import { UnauthorizedError } from '../errors.js'
import type { StateDocument, StateService } from '../state/service.js'
import { StateVersionConflictError } from '../state/errors.js'
import { tokenMatches } from './admin-token.js'
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
  }, async (request): Promise<StateDocument> => state.get(request.params.id))

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
      const document = state.patchDesired(id, request.body.desired, request.body.version)
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
export function adminTokenAuthorizer (adminToken: string): StateAuthorizer {
  return request => {
    const bearer = /^Bearer +(\S+) *$/i.exec(request.headers.authorization ?? '')
    if (bearer === null || !tokenMatches(adminToken, bearer[1])) throw new UnauthorizedError()
  }
}
