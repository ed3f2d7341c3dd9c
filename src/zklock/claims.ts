/**
 * ZK claims (docs/zklock.md): a member of the identity tree proves, without saying which
 * leaf is theirs, that they may claim the epoch's reward for a recipient (an ed25519 public
 * key). The hub checks the cheap things first (shapes, the current epoch, a known root, a
 * nullifier not yet used), then rebuilds the four public signals itself (never taking them
 * from the prover: the amount is the configured reward) and verifies the proof in the worker
 * pool; finally it records the claim and credits the recipient in one transaction, where the
 * primary key on the nullifier refuses a second claim that raced this one, in this process or
 * in another sharing the database.
 */
import { FIELD_P, claimSignalHash, publicSignalsArray } from '../../circuits/claim-inputs.js'
import { BadRequestError, MetanodeError } from '../errors.js'
import { constraintViolated, type SqlDatabase } from '../store/sql.js'
import type { TreeStore } from './tree-store.js'
import { QueueFullError, VerifierCrashedError, isWellFormedRequest } from './verifier-pool.js'

/** Why a claim was refused, with its MQTT Ack reason code (feature codes from 104 up) and HTTP status. */
export const CLAIM_REASONS = {
  bad_proof: { reasonCode: 104, statusCode: 400, code: 'MN_ERR_ZK_BAD_PROOF' },
  unknown_root: { reasonCode: 105, statusCode: 400, code: 'MN_ERR_ZK_UNKNOWN_ROOT' },
  stale_epoch: { reasonCode: 106, statusCode: 400, code: 'MN_ERR_ZK_STALE_EPOCH' },
  double_claim: { reasonCode: 107, statusCode: 409, code: 'MN_ERR_ZK_DOUBLE_CLAIM' },
  busy: { reasonCode: 108, statusCode: 503, code: 'MN_ERR_ZK_BUSY' },
  unknown_circuit: { reasonCode: 109, statusCode: 400, code: 'MN_ERR_ZK_UNKNOWN_CIRCUIT' },
} as const

export type ClaimReason = keyof typeof CLAIM_REASONS

export class ClaimError extends MetanodeError {
  readonly reason: ClaimReason
  /** MQTT Ack reason code. */
  readonly reasonCode: number
  /** For `busy`: suggested Retry-After, in seconds. */
  readonly retryAfterSeconds?: number

  constructor (reason: ClaimReason, message: string, options?: { cause?: unknown, retryAfterSeconds?: number }) {
    const r = CLAIM_REASONS[reason]
    super(r.code, message, r.statusCode, options)
    this.name = 'ClaimError'
    this.reason = reason
    this.reasonCode = r.reasonCode
    if (options?.retryAfterSeconds !== undefined) this.retryAfterSeconds = options.retryAfterSeconds
  }
}

export interface EpochConfig {
  /** Length of an epoch in ms; epoch = floor(now / lengthMs). */
  lengthMs: number
  /** Amount credited per accepted claim (the `amount` bound in the signal hash). */
  reward: number
}

export interface ClaimServiceOptions {
  db: SqlDatabase
  tree: Pick<TreeStore, 'isKnownRoot'>
  verifier: { verify (proof: unknown, publicSignals: string[]): Promise<boolean> }
  epochs: EpochConfig
  /**
   * Told of each claim once it is committed, before the claimant hears of it: the hub
   * bridges it to services. Must not throw (its errors are its own to log); the claim stands.
   */
  onAccepted?: (claim: AcceptedClaim) => Promise<void> | void
  /** Clock, for tests. */
  nowMs?: () => number
}

export interface ClaimRequest {
  /** A snarkjs Groth16 proof ({ pi_a, pi_b, pi_c, protocol?, curve? }). */
  proof: unknown
  /** 64 hex digits (stored lowercase). */
  recipient: string
  epoch: number
  /** Decimal field elements. */
  root: string
  nullifierHash: string
}

export interface ClaimResult {
  nullifier: string
  recipient: string
  amount: number
  epoch: number
  /** The recipient's balance after this claim. */
  balance: number
}

/** A committed claim with what proves it: what services get on the bridge. */
export interface AcceptedClaim extends ClaimResult {
  root: string
  /** The public signals as the hub rebuilt and verified them: [root, nullifierHash, signalHash, epoch]. */
  publicSignals: string[]
  proof: unknown
  claimedMs: number
}

export interface ClaimRecord {
  nullifier: string
  epoch: number
  recipient: string
  amount: number
  root: string
  claimed: number
}

export interface EpochInfo {
  epoch: number
  reward: number
  lengthMs: number
  startsMs: number
  endsMs: number
}

export interface ClaimService {
  claim (request: ClaimRequest): Promise<ClaimResult>
  getClaim (nullifier: string): Promise<ClaimRecord | undefined>
  /** 0 for a recipient never credited. */
  balance (recipient: string): Promise<number>
  currentEpoch (): EpochInfo
}

const DECIMAL = /^[0-9]{1,78}$/
const RECIPIENT = /^[0-9a-fA-F]{64}$/

/** A decimal field element in canonical form (no leading zeros); BadRequestError otherwise. */
export function canonicalField (name: string, value: unknown): string {
  if (typeof value !== 'string' || !DECIMAL.test(value)) throw new BadRequestError(`${name} must be a decimal string`)
  const v = BigInt(value)
  if (v >= FIELD_P) throw new BadRequestError(`${name} must be a field element (< p)`)
  return v.toString()
}

export function canonicalRecipient (value: unknown): string {
  if (typeof value !== 'string' || !RECIPIENT.test(value)) throw new BadRequestError('recipient must be an ed25519 public key as 64 hex digits')
  return value.toLowerCase()
}

/** Verifies in the pool; a full queue or a crashed worker is `busy` (retry later), not a bad proof. */
export async function verifyOrBusy (verifier: ClaimServiceOptions['verifier'], proof: unknown, publicSignals: string[]): Promise<boolean> {
  try {
    return await verifier.verify(proof, publicSignals)
  } catch (err) {
    if (err instanceof QueueFullError) throw new ClaimError('busy', 'too many proofs are being verified; retry later', { cause: err, retryAfterSeconds: err.retryAfterSeconds })
    if (err instanceof VerifierCrashedError) throw new ClaimError('busy', 'the verifier failed; retry later', { cause: err, retryAfterSeconds: 1 })
    throw err
  }
}

interface ClaimRow { nullifier: string, epoch: number, recipient: string, amount: number, root: string, claimed_ms: number }

export function createClaimService (options: ClaimServiceOptions): ClaimService {
  const { db, tree, verifier, epochs } = options
  const now = options.nowMs ?? Date.now
  if (!Number.isSafeInteger(epochs.lengthMs) || epochs.lengthMs < 1) throw new RangeError('epochs.lengthMs must be a positive integer')
  if (!Number.isSafeInteger(epochs.reward) || epochs.reward < 0) throw new RangeError('epochs.reward must be a non-negative safe integer')

  const claimed = async (nullifier: string): Promise<boolean> =>
    await db.get('SELECT nullifier FROM zk_claims WHERE nullifier = ?', [nullifier]) !== undefined

  /** Records the claim and credits the recipient; the new balance. */
  const record = (nullifier: string, epoch: number, recipient: string, amount: number, root: string, claimedMs: number): Promise<number> =>
    db.transaction(async () => {
      await db.run('INSERT INTO zk_claims (nullifier, epoch, recipient, amount, root, claimed_ms) VALUES (?, ?, ?, ?, ?, ?)', [nullifier, epoch, recipient, amount, root, claimedMs])
      const credited = await db.get<{ amount: number }>(
        'INSERT INTO zk_balances (recipient, amount) VALUES (?, ?) ON CONFLICT (recipient) DO UPDATE SET amount = zk_balances.amount + excluded.amount RETURNING amount',
        [recipient, amount],
      )
      return credited!.amount
    })

  function currentEpoch (): EpochInfo {
    const t = now()
    const epoch = Math.floor(t / epochs.lengthMs)
    return { epoch, reward: epochs.reward, lengthMs: epochs.lengthMs, startsMs: epoch * epochs.lengthMs, endsMs: (epoch + 1) * epochs.lengthMs }
  }

  async function claim (request: ClaimRequest): Promise<ClaimResult> {
    // Cheap checks first: shapes, epoch, root, nullifier.
    const recipient = canonicalRecipient(request.recipient)
    if (!Number.isSafeInteger(request.epoch) || request.epoch < 0) throw new BadRequestError('epoch must be a non-negative integer')
    const root = canonicalField('root', request.root)
    const nullifier = canonicalField('nullifierHash', request.nullifierHash)
    const epoch = request.epoch
    const current = currentEpoch().epoch
    if (epoch !== current) throw new ClaimError('stale_epoch', `claims are for the current epoch ${current}, not ${epoch}`)
    if (!await tree.isKnownRoot(root)) throw new ClaimError('unknown_root', 'the root is not a current or recent root of the identity tree')
    if (await claimed(nullifier)) throw new ClaimError('double_claim', 'this identity has already claimed in this epoch')

    // The public signals, rebuilt here: the proof must bind this recipient, the reward and the epoch.
    const amount = epochs.reward
    const signalHash = claimSignalHash({ recipient, amount: BigInt(amount), epoch: BigInt(epoch) })
    const publicSignals = publicSignalsArray({ root: BigInt(root), nullifierHash: BigInt(nullifier), signalHash, epoch: BigInt(epoch) })
    if (!isWellFormedRequest(request.proof, publicSignals, publicSignals.length)) throw new ClaimError('bad_proof', 'the proof is malformed')
    if (!await verifyOrBusy(verifier, request.proof, publicSignals)) {
      throw new ClaimError('bad_proof', 'the proof does not verify for this root, nullifier, recipient, reward and epoch')
    }

    let balance: number
    const claimedMs = now()
    try {
      balance = await record(nullifier, epoch, recipient, amount, root, claimedMs)
    } catch (err) {
      // The nullifier is zk_claims' only unique key: another claim with it committed first.
      if (constraintViolated(err) === 'unique') {
        throw new ClaimError('double_claim', 'this identity has already claimed in this epoch', { cause: err })
      }
      throw err
    }
    const result = { nullifier, recipient, amount, epoch, balance }
    await options.onAccepted?.({ ...result, root, publicSignals, proof: request.proof, claimedMs })
    return result
  }

  async function getClaim (nullifier: string): Promise<ClaimRecord | undefined> {
    let key: string
    try {
      key = canonicalField('nullifier', nullifier)
    } catch {
      return undefined
    }
    const row = await db.get<ClaimRow>('SELECT nullifier, epoch, recipient, amount, root, claimed_ms FROM zk_claims WHERE nullifier = ?', [key])
    if (!row) return undefined
    return { nullifier: row.nullifier, epoch: row.epoch, recipient: row.recipient, amount: row.amount, root: row.root, claimed: row.claimed_ms }
  }

  async function balance (recipient: string): Promise<number> {
    const row = await db.get<{ amount: number }>('SELECT amount FROM zk_balances WHERE recipient = ?', [canonicalRecipient(recipient)])
    return row?.amount ?? 0
  }

  return { claim, getClaim, balance, currentEpoch }
}
