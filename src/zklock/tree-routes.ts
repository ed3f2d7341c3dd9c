/**
 * The identity tree over HTTP:
 * - `POST /v1/zk/commitments`: a device adds its own commitment (its leaf, Poseidon1(secret));
 *   the admin may add one for any device with `deviceId`;
 * - `GET /v1/zk/roots`: current root, leaf count, the accepted recent roots;
 * - `GET /v1/zk/leaves?after=&limit=`: public, so that apps download every leaf and compute
 *   their own path without telling the hub which leaf is theirs.
 */
import type { FastifyPluginCallback } from 'fastify'
import { BadRequestError, ForbiddenError, UnauthorizedError } from '../errors.js'
import { LEAVES_LIMIT_DEFAULT, LEAVES_LIMIT_MAX, type TreeStore } from './tree-store.js'

export interface TreeRoutesOptions {
  tree: TreeStore
}

const decimal = { type: 'string', pattern: '^[0-9]{1,78}$' } as const

const addBody = {
  type: 'object',
  required: ['commitment'],
  additionalProperties: false,
  properties: {
    commitment: decimal,
    deviceId: { type: 'string', minLength: 1, maxLength: 64 },
  },
} as const

const addedSchema = {
  type: 'object',
  required: ['index', 'commitment', 'deviceId', 'root', 'leafCount', 'added'],
  additionalProperties: false,
  properties: {
    index: { type: 'integer' },
    commitment: { type: 'string' },
    deviceId: { type: 'string' },
    root: { type: 'string' },
    leafCount: { type: 'integer' },
    added: { type: 'integer' },
  },
} as const

const rootsSchema = {
  type: 'object',
  required: ['root', 'leafCount', 'history', 'recent'],
  additionalProperties: false,
  properties: {
    root: { type: 'string' },
    leafCount: { type: 'integer' },
    history: { type: 'integer' },
    recent: {
      type: 'array',
      items: {
        type: 'object',
        required: ['root', 'leafCount', 'created'],
        additionalProperties: false,
        properties: { root: { type: 'string' }, leafCount: { type: 'integer' }, created: { type: 'integer' } },
      },
    },
  },
} as const

// Query values arrive as strings (the server does not coerce types): digits only, read in the handler.
const leavesQuery = {
  type: 'object',
  additionalProperties: false,
  properties: {
    after: { type: 'string', pattern: '^[0-9]{1,9}$' },
    limit: { type: 'string', pattern: '^[0-9]{1,6}$' },
  },
} as const

const leavesSchema = {
  type: 'object',
  required: ['start', 'commitments', 'leafCount', 'root'],
  additionalProperties: false,
  properties: {
    start: { type: 'integer' },
    commitments: { type: 'array', items: { type: 'string' } },
    leafCount: { type: 'integer' },
    root: { type: 'string' },
  },
} as const

interface AddBody { commitment: string, deviceId?: string }

export const treeRoutes: FastifyPluginCallback<TreeRoutesOptions> = (app, options, done) => {
  const { tree } = options

  app.post<{ Body: AddBody }>('/v1/zk/commitments', {
    schema: { tags: ['zk'], summary: "Adds a device's identity commitment to the tree", body: addBody, response: { 201: addedSchema } },
  }, async (request, reply) => {
    const identity = request.identity
    let deviceId: string
    if (identity.kind === 'admin') {
      if (request.body.deviceId === undefined) throw new BadRequestError('the admin must name the device: deviceId')
      deviceId = request.body.deviceId
    } else if (identity.kind === 'principal') {
      if (identity.role !== 'device') throw new ForbiddenError('only devices have identity commitments')
      if (request.body.deviceId !== undefined && request.body.deviceId !== identity.id) throw new ForbiddenError('a device may add only its own commitment')
      deviceId = identity.id
    } else {
      reply.header('www-authenticate', 'Bearer realm="metanode", MN1-Ed25519')
      throw new UnauthorizedError('a device signature or the admin token is required')
    }
    const added = await tree.addCommitment(deviceId, request.body.commitment)
    request.log.info({ deviceId, index: added.index, leafCount: added.leafCount }, 'identity commitment added')
    return reply.code(201).send(added)
  })

  app.get('/v1/zk/roots', {
    schema: { tags: ['zk'], summary: 'The current root and the recent roots still accepted', response: { 200: rootsSchema } },
  }, async () => {
    const { root, leafCount, recent } = await tree.roots()
    return { root, leafCount, history: tree.rootHistory, recent }
  })

  app.get<{ Querystring: { after?: string, limit?: string } }>('/v1/zk/leaves', {
    schema: { tags: ['zk'], summary: 'The leaves from index `after`, for apps that compute their own paths', querystring: leavesQuery, response: { 200: leavesSchema } },
  }, async request => {
    const after = request.query.after === undefined ? 0 : Number(request.query.after)
    const limit = request.query.limit === undefined ? LEAVES_LIMIT_DEFAULT : Number(request.query.limit)
    if (limit < 1 || limit > LEAVES_LIMIT_MAX) throw new BadRequestError(`limit must be an integer in [1, ${LEAVES_LIMIT_MAX}]`)
    return await tree.leaves(after, limit)
  })

  done()
}
