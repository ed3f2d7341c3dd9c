/**
 * ZK claims over HTTP (src/zklock/claims.ts), no authentication (the proof is the credential):
 * - `POST /v1/zk/claims`: claims the current epoch's reward for a recipient; rate-limited per address;
 *   503 with Retry-After when the verifier's queue is full;
 * - `GET /v1/zk/claims/:nullifier`: an accepted claim (404 unknown);
 * - `GET /v1/zk/balances/:recipient`: a recipient's balance (0 if never credited);
 * - `GET /v1/zk/epoch`: the current epoch, its reward and when it ends.
 */
import type { FastifyPluginCallback } from 'fastify'
import { BadRequestError, NotFoundError } from '../errors.js'
import { ClaimError, canonicalField, canonicalRecipient, type ClaimService } from './claims.js'

export interface ClaimRoutesOptions {
  claims: ClaimService
  /** Claims per minute per client address; default 30. */
  claimsPerMinute?: number
}

const decimal = { type: 'string', pattern: '^[0-9]{1,78}$' } as const
const hex64 = { type: 'string', pattern: '^[0-9a-fA-F]{64}$' } as const
const pair = { type: 'array', minItems: 2, maxItems: 2, items: decimal } as const

const proofSchema = {
  type: 'object',
  required: ['pi_a', 'pi_b', 'pi_c'],
  additionalProperties: false,
  properties: {
    pi_a: { type: 'array', minItems: 3, maxItems: 3, items: decimal },
    pi_b: { type: 'array', minItems: 3, maxItems: 3, items: pair },
    pi_c: { type: 'array', minItems: 3, maxItems: 3, items: decimal },
    protocol: { type: 'string', const: 'groth16' },
    curve: { type: 'string', const: 'bn128' },
  },
} as const

const claimBody = {
  type: 'object',
  required: ['proof', 'recipient', 'epoch', 'root', 'nullifierHash'],
  additionalProperties: false,
  properties: {
    proof: proofSchema,
    // Optional; when given it must equal the signals the hub rebuilds ([root, nullifierHash, signalHash, epoch]).
    publicSignals: { type: 'array', minItems: 4, maxItems: 4, items: decimal },
    recipient: hex64,
    epoch: { type: 'integer', minimum: 0, maximum: Number.MAX_SAFE_INTEGER },
    root: decimal,
    nullifierHash: decimal,
  },
} as const

const claimResult = {
  type: 'object',
  required: ['nullifier', 'recipient', 'amount', 'epoch', 'balance'],
  additionalProperties: false,
  properties: {
    nullifier: { type: 'string' },
    recipient: { type: 'string' },
    amount: { type: 'integer' },
    epoch: { type: 'integer' },
    balance: { type: 'integer' },
  },
} as const

const claimRecord = {
  type: 'object',
  required: ['nullifier', 'epoch', 'recipient', 'amount', 'root', 'claimed'],
  additionalProperties: false,
  properties: {
    nullifier: { type: 'string' },
    epoch: { type: 'integer' },
    recipient: { type: 'string' },
    amount: { type: 'integer' },
    root: { type: 'string' },
    claimed: { type: 'integer' },
  },
} as const

const balanceSchema = {
  type: 'object',
  required: ['recipient', 'balance'],
  additionalProperties: false,
  properties: { recipient: { type: 'string' }, balance: { type: 'integer' } },
} as const

const epochSchema = {
  type: 'object',
  required: ['epoch', 'reward', 'lengthMs', 'startsMs', 'endsMs'],
  additionalProperties: false,
  properties: {
    epoch: { type: 'integer' },
    reward: { type: 'integer' },
    lengthMs: { type: 'integer' },
    startsMs: { type: 'integer' },
    endsMs: { type: 'integer' },
  },
} as const

interface ClaimBody {
  proof: unknown
  publicSignals?: string[]
  recipient: string
  epoch: number
  root: string
  nullifierHash: string
}

export const claimRoutes: FastifyPluginCallback<ClaimRoutesOptions> = (app, options, done) => {
  const { claims } = options
  const perMinute = options.claimsPerMinute ?? 30

  app.post<{ Body: ClaimBody }>('/v1/zk/claims', {
    config: { rateLimit: { max: perMinute, timeWindow: 60_000 } },
    schema: { tags: ['zk'], summary: "Claims the current epoch's reward with a zero-knowledge proof of membership", body: claimBody, response: { 201: claimResult } },
  }, async (request, reply) => {
    const body = request.body
    if (body.publicSignals !== undefined) {
      // Only a consistency check: the hub verifies against the signals it rebuilds itself.
      const p = body.publicSignals
      if (canonicalField('publicSignals[0]', p[0]) !== canonicalField('root', body.root) ||
        canonicalField('publicSignals[1]', p[1]) !== canonicalField('nullifierHash', body.nullifierHash) ||
        canonicalField('publicSignals[3]', p[3]) !== String(body.epoch)) {
        throw new BadRequestError('publicSignals disagree with root, nullifierHash or epoch')
      }
    }
    try {
      const result = await claims.claim({ proof: body.proof, recipient: body.recipient, epoch: body.epoch, root: body.root, nullifierHash: body.nullifierHash })
      request.log.info({ nullifier: result.nullifier, epoch: result.epoch, recipient: result.recipient }, 'zk claim accepted')
      return reply.code(201).send(result)
    } catch (err) {
      if (err instanceof ClaimError && err.reason === 'busy') reply.header('retry-after', String(err.retryAfterSeconds ?? 1))
      throw err
    }
  })

  app.get<{ Params: { nullifier: string } }>('/v1/zk/claims/:nullifier', {
    schema: { tags: ['zk'], summary: 'An accepted claim, by nullifier', params: { type: 'object', required: ['nullifier'], additionalProperties: false, properties: { nullifier: decimal } }, response: { 200: claimRecord } },
  }, async request => {
    const found = await claims.getClaim(request.params.nullifier)
    if (!found) throw new NotFoundError('no claim with this nullifier')
    return found
  })

  app.get<{ Params: { recipient: string } }>('/v1/zk/balances/:recipient', {
    schema: { tags: ['zk'], summary: "A recipient's balance", params: { type: 'object', required: ['recipient'], additionalProperties: false, properties: { recipient: hex64 } }, response: { 200: balanceSchema } },
  }, async request => {
    const recipient = canonicalRecipient(request.params.recipient)
    return { recipient, balance: await claims.balance(recipient) }
  })

  app.get('/v1/zk/epoch', {
    schema: { tags: ['zk'], summary: 'The current epoch, its reward and when it ends', response: { 200: epochSchema } },
  }, async () => claims.currentEpoch())

  done()
}
