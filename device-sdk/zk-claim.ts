/**
 * Anonymous claims (docs/zklock.md §11): `new ZkClaimer(...).claim(recipient)` reads the
 * epoch and its reward, syncs the identity tree, finds the device's leaf locally, proves,
 * and POSTs the proof to `/v1/zk/claims` with no authentication and nothing naming the
 * device; it resolves with the hub's verdict or rejects with ZkClaimRefusedError.
 *
 * The commitment goes the other way, identified: a device adds its own with its signed
 * HubHttpClient (addZkCommitment), once, long before it claims.
 */
import { ArgumentError, HttpError, ZkClaimRefusedError, type ZkClaimRefusal } from './errors.js'
import type { HubHttpClient } from './http.js'
import { zkIdentitySecret, type ZkIdentity } from './zk-identity.js'
import { AnonymousHttp, httpError, type AnonymousHttpOptions, type AnonymousResponse } from './zk-http.js'
import { proveClaim, type ClaimArtifacts } from './zk-prove.js'
import { ZkTreeSync } from './zk-tree.js'

/** What the hub answers to an added commitment. */
export interface ZkCommitmentAdded {
  /** The leaf's index. The hub knows it (it knows who added it); claims never mention it. */
  index: number
  commitment: string
  deviceId: string
  root: string
  leafCount: number
  /** Unix ms. */
  added: number
}

/**
 * Adds this identity's commitment to the hub's tree, signed by the device itself
 * (POST /v1/zk/commitments). Once per device: a second one is HttpError 409
 * (MN_ERR_CONFLICT), as is a commitment already in the tree; ZkTreeSync.indexOf tells
 * whether it is there.
 */
export function addZkCommitment (http: HubHttpClient, identity: ZkIdentity): Promise<ZkCommitmentAdded> {
  return http.request<ZkCommitmentAdded>('POST', '/v1/zk/commitments', { commitment: identity.commitment.toString() })
}

/** GET /v1/zk/epoch. */
export interface ZkEpoch {
  epoch: number
  /** What an accepted claim credits: the amount every proof of this epoch must bind. */
  reward: number
  lengthMs: number
  startsMs: number
  endsMs: number
}

/** The hub's verdict on an accepted claim. */
export interface ZkClaimResult {
  nullifier: string
  recipient: string
  amount: number
  epoch: number
  /** The recipient's balance after this claim. */
  balance: number
}

/** GET /v1/zk/claims/:nullifier. */
export interface ZkClaimRecord {
  nullifier: string
  epoch: number
  recipient: string
  amount: number
  root: string
  /** Unix ms. */
  claimed: number
}

export interface ZkClaimerOptions extends AnonymousHttpOptions {
  identity: ZkIdentity
  artifacts: ClaimArtifacts
  /** The tree to sync and reuse between claims; by default one of its own over `baseUrl`. */
  tree?: ZkTreeSync
  /** Times a claim answered `busy` (503) or `rate_limited` (429) is sent again after the hub's Retry-After; default 2. */
  busyRetries?: number
  /** A Retry-After longer than this (seconds) is not waited for: the refusal is thrown. Default 30. */
  maxRetryAfterSeconds?: number
  /**
   * Before proving, ask whether this epoch's nullifier is already recorded and refuse
   * `double_claim` locally, saving the proof. Default true. It tells the hub nothing the
   * claim would not: the same nullifier, from the same address.
   */
  precheck?: boolean
}

/** The hub's codes (MN_ERR_ZK_*) and the refusals they mean. */
const REFUSALS: Record<string, ZkClaimRefusal> = {
  MN_ERR_ZK_BAD_PROOF: 'bad_proof',
  MN_ERR_ZK_UNKNOWN_ROOT: 'unknown_root',
  MN_ERR_ZK_STALE_EPOCH: 'stale_epoch',
  MN_ERR_ZK_DOUBLE_CLAIM: 'double_claim',
  MN_ERR_ZK_BUSY: 'busy',
  MN_ERR_RATE_LIMITED: 'rate_limited',
}

const RECIPIENT = /^[0-9a-fA-F]{64}$/
const BUSY_RETRIES_DEFAULT = 2
const RETRY_AFTER_MAX_DEFAULT = 30
/** Proofs one claim may make: the second only when the root or the epoch moved on during the first. */
const PROOFS_MAX = 2

export class ZkClaimer {
  readonly tree: ZkTreeSync
  readonly #http: AnonymousHttp
  readonly #identity: ZkIdentity
  readonly #artifacts: ClaimArtifacts
  readonly #fetch: typeof fetch | undefined
  readonly #busyRetries: number
  readonly #retryAfterMax: number
  readonly #precheck: boolean

  constructor (options: ZkClaimerOptions) {
    this.#http = new AnonymousHttp(options)
    zkIdentitySecret(options.identity) // throws ArgumentError for anything but a ZkIdentity
    this.#identity = options.identity
    if (options.artifacts === undefined) throw new ArgumentError('artifacts expected { wasm, zkey } (loadClaimArtifacts() in device-sdk/node)')
    this.#artifacts = options.artifacts
    this.#fetch = options.fetch
    this.tree = options.tree ?? new ZkTreeSync(options)
    this.#busyRetries = options.busyRetries ?? BUSY_RETRIES_DEFAULT
    if (!Number.isSafeInteger(this.#busyRetries) || this.#busyRetries < 0 || this.#busyRetries > 10) throw new ArgumentError('busyRetries expected an integer in [0, 10]')
    this.#retryAfterMax = options.maxRetryAfterSeconds ?? RETRY_AFTER_MAX_DEFAULT
    if (!Number.isFinite(this.#retryAfterMax) || this.#retryAfterMax < 0) throw new ArgumentError('maxRetryAfterSeconds expected a non-negative number')
    this.#precheck = options.precheck ?? true
  }

  /** The hub's current epoch and its reward. */
  async epoch (): Promise<ZkEpoch> {
    const info = await this.#http.get('/v1/zk/epoch') as Partial<ZkEpoch> | undefined
    if (!Number.isSafeInteger(info?.epoch) || !Number.isSafeInteger(info?.reward) || info!.epoch! < 0 || info!.reward! < 0) {
      throw new HttpError(200, 'MN_ERR_HTTP', 'GET /v1/zk/epoch: no valid epoch and reward in the answer')
    }
    return info as ZkEpoch
  }

  /** A recipient's balance (0 if never credited). */
  async balance (recipient: string): Promise<number> {
    const answer = await this.#http.get(`/v1/zk/balances/${checkRecipient(recipient)}`) as { balance?: unknown }
    if (typeof answer?.balance !== 'number') throw new HttpError(200, 'MN_ERR_HTTP', 'GET /v1/zk/balances: no balance in the answer')
    return answer.balance
  }

  /** The claim recorded under a nullifier, or undefined. */
  async claimRecord (nullifier: string | bigint): Promise<ZkClaimRecord | undefined> {
    const text = String(nullifier)
    if (!/^[0-9]{1,78}$/.test(text)) throw new ArgumentError('nullifier expected a decimal field element')
    const answer = await this.#http.send('GET', `/v1/zk/claims/${text}`)
    if (answer.status === 404) return undefined
    if (answer.status !== 200) throw httpError(answer)
    return answer.json as ZkClaimRecord
  }

  /**
   * Claims the current epoch's reward for `recipient` (an ed25519 public key, 64 hex
   * digits) and resolves with the hub's verdict. With `epoch`, refuses locally
   * (ZkClaimRefusedError `stale_epoch`, `fromHub` false) unless it is the hub's current
   * one; without, a claim that crosses an epoch boundary is proved again once for the new
   * epoch, and so is one whose root the hub stopped accepting meanwhile.
   *
   * Rejects with ZkNotInTreeError (nothing sent but the public reads) when this identity's
   * commitment is not in the tree, ZkClaimRefusedError when the hub refuses, ZkTreeError or
   * HttpError when the hub's answers are unusable.
   */
  async claim (recipient: string, epoch?: number): Promise<ZkClaimResult> {
    const to = checkRecipient(recipient)
    if (epoch !== undefined && (!Number.isSafeInteger(epoch) || epoch < 0)) throw new ArgumentError('epoch expected a non-negative integer')
    for (let proofs = 1; ; proofs++) {
      const info = await this.epoch()
      if (epoch !== undefined && epoch !== info.epoch) {
        throw new ZkClaimRefusedError('stale_epoch', `epoch ${epoch} is not the hub's current epoch ${info.epoch}`, { status: 400, code: 'MN_ERR_ZK_STALE_EPOCH', fromHub: false })
      }
      await this.tree.sync()
      // Local: ZkNotInTreeError before anything about this identity is sent.
      const path = this.tree.path(this.#identity.commitment)
      if (this.#precheck) {
        const nullifier = this.#identity.nullifier(info.epoch).toString()
        if (await this.claimRecord(nullifier) !== undefined) {
          throw new ZkClaimRefusedError('double_claim', `this identity has already claimed in epoch ${info.epoch}`, { status: 409, code: 'MN_ERR_ZK_DOUBLE_CLAIM', fromHub: false })
        }
      }
      const made = await proveClaim({
        identity: this.#identity, path, root: path.root, recipient: to, amount: BigInt(info.reward), epoch: BigInt(info.epoch), artifacts: this.#artifacts, fetch: this.#fetch,
      })
      // Exactly what the route takes, and nothing else: no device id, no index, no signature.
      const body = { proof: made.proof, recipient: made.recipient, epoch: info.epoch, root: made.root, nullifierHash: made.nullifierHash }
      try {
        return await this.#submit(body)
      } catch (err) {
        const moved = err instanceof ZkClaimRefusedError && (err.reason === 'unknown_root' || (err.reason === 'stale_epoch' && epoch === undefined))
        if (!moved || proofs >= PROOFS_MAX) throw err
      }
    }
  }

  /** POSTs the claim, again after Retry-After while the hub is busy (bounded). */
  async #submit (body: Record<string, unknown>): Promise<ZkClaimResult> {
    for (let retries = 0; ; retries++) {
      const answer = await this.#http.send('POST', '/v1/zk/claims', body)
      if (answer.status === 200 || answer.status === 201) return claimResult(answer)
      const refusal = claimRefusal(answer)
      const wait = refusal instanceof ZkClaimRefusedError ? refusal.retryAfterSeconds : undefined
      if (wait === undefined || retries >= this.#busyRetries || wait > this.#retryAfterMax) throw refusal
      await new Promise(resolve => setTimeout(resolve, wait * 1000))
    }
  }
}

function checkRecipient (recipient: string): string {
  if (typeof recipient !== 'string' || !RECIPIENT.test(recipient)) throw new ArgumentError('recipient expected an ed25519 public key as 64 hex digits')
  return recipient.toLowerCase()
}

function claimResult (answer: AnonymousResponse): ZkClaimResult {
  const r = answer.json as Partial<ZkClaimResult> | undefined
  if (typeof r?.nullifier !== 'string' || typeof r.recipient !== 'string' || typeof r.amount !== 'number' || typeof r.epoch !== 'number' || typeof r.balance !== 'number') {
    throw new HttpError(answer.status, 'MN_ERR_HTTP', 'POST /v1/zk/claims: the hub accepted the claim but its answer is malformed')
  }
  return { nullifier: r.nullifier, recipient: r.recipient, amount: r.amount, epoch: r.epoch, balance: r.balance }
}

/** The hub's refusal as a ZkClaimRefusedError (its MN_ERR_ZK_* code, 429 or 503), else an HttpError. */
function claimRefusal (answer: AnonymousResponse): ZkClaimRefusedError | HttpError {
  const error = (answer.json ?? {}) as { code?: unknown, message?: unknown }
  const code = typeof error.code === 'string' ? error.code : undefined
  const reason = (code !== undefined ? REFUSALS[code] : undefined) ??
    (answer.status === 429 ? 'rate_limited' : answer.status === 503 ? 'busy' : undefined)
  if (reason === undefined) return httpError(answer)
  const retryable = reason === 'busy' || reason === 'rate_limited'
  return new ZkClaimRefusedError(reason, typeof error.message === 'string' ? error.message : `status ${answer.status}`, {
    status: answer.status,
    code: code ?? `MN_ERR_HTTP_${answer.status}`,
    fromHub: true,
    retryAfterSeconds: retryable ? retryAfterSeconds(answer.headers.get('retry-after')) : undefined,
  })
}

/** Retry-After in seconds (delta-seconds or an HTTP date); 1 when absent or unreadable. */
function retryAfterSeconds (value: string | null): number {
  if (value === null) return 1
  if (/^[0-9]{1,9}$/.test(value.trim())) return Number(value.trim())
  const at = Date.parse(value)
  return Number.isNaN(at) ? 1 : Math.max(0, Math.ceil((at - Date.now()) / 1000))
}
