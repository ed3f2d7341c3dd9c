/**
 * The device's own copy of the hub's identity tree (docs/zklock.md §4, §11). It downloads
 * every leaf from the public `GET /v1/zk/leaves`, so the hub never learns which leaf the
 * device looks for, checks that they hash to the root the hub reports and that this root is
 * one the hub accepts (`GET /v1/zk/roots`), and computes Merkle paths locally.
 *
 * Syncs are incremental: the next one asks only for the leaves after those it has. The tree
 * is append-only and dense (the hub appends leaves in order), so a page of k new leaves costs
 * about k + 20 Poseidon hashes, where inserting them one by one would cost 20k.
 */
import { poseidon2 } from 'poseidon-lite/poseidon2'
import { FIELD_P, TREE_DEPTH, rootFromProof, zeroHashes, type MerkleProof } from '../circuits/claim-inputs.js'
import { ArgumentError, ZkNotInTreeError, ZkTreeError } from './errors.js'
import { AnonymousHttp, type AnonymousHttpOptions } from './zk-http.js'

/** The hub serves at most this many leaves a page (LEAVES_LIMIT_MAX). */
export const ZK_PAGE_SIZE_MAX = 10_000
export const ZK_PAGE_SIZE_DEFAULT = 1000
/** The circuit's tree holds 2^20 leaves: a hub reporting more is not one we can prove against. */
export const ZK_LEAVES_MAX = 2 ** TREE_DEPTH

export interface ZkTreeSyncOptions extends AnonymousHttpOptions {
  /** Leaves asked for per request, in [1, 10,000]; default 1,000. */
  pageSize?: number
  /** Refuse a tree larger than this (memory: about 120 bytes a leaf); default and maximum 2^20. */
  maxLeaves?: number
}

export interface ZkSyncResult {
  leafCount: number
  /** The root of the leaves held, decimal: the current root of the hub, or one it still accepts. */
  root: string
  /** Leaves downloaded by this sync. */
  fetched: number
  /** Requests for leaves made by this sync. */
  pages: number
}

/** A leaf's path in the tree, with the root it leads to: what the prover needs. */
export interface ZkMerklePath extends MerkleProof {
  index: number
  leaf: bigint
  root: bigint
}

/** The tree shrank or its old leaves changed (the hub's database was replaced): start over. */
class TreeChanged extends Error {}

/** Rounds of (leaves, roots) in one sync: the root moves on only if commitments arrive meanwhile. */
const SYNC_ROUNDS_MAX = 3
const DECIMAL = /^[0-9]{1,78}$/

export class ZkTreeSync {
  readonly pageSize: number
  readonly maxLeaves: number
  /** Totals over every sync: leaf pages requested and leaves downloaded. */
  readonly stats = { pages: 0, leaves: 0 }
  readonly #http: AnonymousHttp
  readonly #zeros = zeroHashes(TREE_DEPTH)
  /** levels[0] are the leaves; levels[l][i] is node i of level l, for the nodes that have a leaf below them. */
  #levels: bigint[][] = []
  #synced = false
  #syncing: Promise<ZkSyncResult> | undefined

  constructor (options: ZkTreeSyncOptions) {
    this.#http = new AnonymousHttp(options)
    this.pageSize = options.pageSize ?? ZK_PAGE_SIZE_DEFAULT
    if (!Number.isSafeInteger(this.pageSize) || this.pageSize < 1 || this.pageSize > ZK_PAGE_SIZE_MAX) {
      throw new ArgumentError(`pageSize expected an integer in [1, ${ZK_PAGE_SIZE_MAX}], got ${String(options.pageSize)}`)
    }
    this.maxLeaves = options.maxLeaves ?? ZK_LEAVES_MAX
    if (!Number.isSafeInteger(this.maxLeaves) || this.maxLeaves < 1 || this.maxLeaves > ZK_LEAVES_MAX) {
      throw new ArgumentError(`maxLeaves expected an integer in [1, ${ZK_LEAVES_MAX}], got ${String(options.maxLeaves)}`)
    }
    this.reset()
  }

  get leafCount (): number {
    return this.#levels[0].length
  }

  /** Root of the leaves held (the empty tree's root before the first sync). */
  get root (): bigint {
    return this.#node(TREE_DEPTH, 0)
  }

  /** Forgets every leaf: the next sync downloads the whole tree. */
  reset (): void {
    this.#levels = Array.from({ length: TREE_DEPTH + 1 }, () => [])
    this.#synced = false
  }

  /**
   * Downloads the leaves added since the last sync, checks that all the leaves hash to the
   * root the hub reports and that the hub still accepts that root. If the hub's tree has
   * changed under the leaves held (its database was replaced), starts over from none.
   * ZkTreeError when the hub's answers do not add up; HttpError when it refuses. Calls made
   * while a sync runs share it.
   */
  sync (): Promise<ZkSyncResult> {
    this.#syncing ??= this.#sync().finally(() => { this.#syncing = undefined })
    return this.#syncing
  }

  async #sync (): Promise<ZkSyncResult> {
    this.#synced = false
    let fetched = 0
    let pages = 0
    for (let round = 0; round < SYNC_ROUNDS_MAX; round++) {
      const pulled = await this.#pullOrRestart()
      fetched += pulled.fetched
      pages += pulled.pages
      const roots = await this.#http.get('/v1/zk/roots') as { root?: unknown, leafCount?: unknown, recent?: unknown }
      const root = this.root.toString()
      const recent = Array.isArray(roots?.recent) ? roots.recent.map(r => (r as { root?: unknown })?.root) : []
      if (roots?.root === root || recent.includes(root)) {
        this.#synced = true
        return { leafCount: this.leafCount, root, fetched, pages }
      }
      // Not accepted (any more): fine if leaves were added since, then pull them; else the hub contradicts itself.
      if (typeof roots?.leafCount !== 'number' || roots.leafCount <= this.leafCount) {
        throw new ZkTreeError(`the hub does not accept the root of its own ${this.leafCount} leaves`)
      }
    }
    throw new ZkTreeError(`the identity tree kept changing during ${SYNC_ROUNDS_MAX} syncs; try again`)
  }

  /** The index of a commitment among the leaves held, or undefined. Local: the hub is never asked. */
  indexOf (commitment: bigint): number | undefined {
    const index = this.#levels[0].indexOf(commitment)
    return index < 0 ? undefined : index
  }

  /**
   * The Merkle path of a commitment in the tree as last synced. ZkNotInTreeError when it is
   * not there; sync() first.
   */
  path (commitment: bigint): ZkMerklePath {
    if (!this.#synced) throw new ArgumentError('sync() the tree before asking for a path')
    const index = this.indexOf(commitment)
    if (index === undefined) throw new ZkNotInTreeError(commitment.toString(), this.leafCount)
    const pathElements: bigint[] = []
    const pathIndices: number[] = []
    let i = index
    for (let level = 0; level < TREE_DEPTH; level++) {
      pathIndices.push(i & 1)
      pathElements.push(this.#node(level, i ^ 1))
      i = Math.floor(i / 2)
    }
    const root = this.root
    // Cheap (20 hashes) and catches a bug here before it costs a proof.
    if (rootFromProof(commitment, { pathElements, pathIndices }) !== root) throw new ZkTreeError('internal: the computed path does not lead to the root')
    return { index, leaf: commitment, root, pathElements, pathIndices }
  }

  #node (level: number, index: number): bigint {
    return this.#levels[level][index] ?? this.#zeros[level]
  }

  /** #pull, starting over from no leaves (once) when the hub's tree changed under the ones held. */
  async #pullOrRestart (): Promise<{ fetched: number, pages: number }> {
    try {
      return await this.#pull()
    } catch (err) {
      if (!(err instanceof TreeChanged)) throw err
    }
    this.reset()
    try {
      return await this.#pull()
    } catch (err) {
      if (err instanceof TreeChanged) throw new ZkTreeError(`the hub's leaves do not hash to the root it reports: ${err.message}`)
      throw err
    }
  }

  /** Pages of leaves until the hub has no more; checks the root of the result. */
  async #pull (): Promise<{ fetched: number, pages: number }> {
    let fetched = 0
    let pages = 0
    for (;;) {
      const held = this.leafCount
      const page = parsePage(await this.#http.get(`/v1/zk/leaves?after=${held}&limit=${this.pageSize}`), held, this.pageSize)
      pages++
      this.stats.pages++
      if (page.leafCount > this.maxLeaves) throw new ZkTreeError(`the hub's tree has ${page.leafCount} leaves, over maxLeaves ${this.maxLeaves}`)
      if (page.leafCount < held) throw new TreeChanged(`the hub has ${page.leafCount} leaves, fewer than the ${held} held`)
      if (held + page.commitments.length > page.leafCount) throw new ZkTreeError(`a page of leaves goes past the hub's leaf count ${page.leafCount}`)
      this.#append(page.commitments)
      fetched += page.commitments.length
      this.stats.leaves += page.commitments.length
      if (this.leafCount === page.leafCount) {
        if (this.root.toString() !== page.root) throw new TreeChanged(`the root of ${this.leafCount} leaves is not the hub's`)
        return { fetched, pages }
      }
      if (page.commitments.length === 0) throw new ZkTreeError(`the hub reports ${page.leafCount} leaves but sent none after ${held}`)
    }
  }

  /** Appends leaves and recomputes only the nodes above them. */
  #append (leaves: bigint[]): void {
    if (leaves.length === 0) return
    const leafLevel = this.#levels[0]
    let from = leafLevel.length
    for (const leaf of leaves) leafLevel.push(leaf)
    let to = leafLevel.length - 1
    for (let level = 0; level < TREE_DEPTH; level++) {
      const parents = this.#levels[level + 1]
      for (let p = Math.floor(from / 2); p <= Math.floor(to / 2); p++) {
        parents[p] = poseidon2([this.#node(level, 2 * p), this.#node(level, 2 * p + 1)])
      }
      from = Math.floor(from / 2)
      to = Math.floor(to / 2)
    }
  }
}

interface LeafPage { commitments: bigint[], leafCount: number, root: string }

/** Checks a page's shape strictly: everything in it goes into the tree we prove against. */
function parsePage (value: unknown, start: number, limit: number): LeafPage {
  const page = value as { start?: unknown, commitments?: unknown, leafCount?: unknown, root?: unknown } | null
  if (page === null || typeof page !== 'object') throw new ZkTreeError('a page of leaves is not an object')
  if (page.start !== start) throw new ZkTreeError(`a page of leaves starts at ${String(page.start)}, not at ${start} as asked`)
  if (!Number.isSafeInteger(page.leafCount) || (page.leafCount as number) < 0) throw new ZkTreeError('a page of leaves has no valid leafCount')
  if (typeof page.root !== 'string' || !DECIMAL.test(page.root)) throw new ZkTreeError('a page of leaves has no valid root')
  if (!Array.isArray(page.commitments) || page.commitments.length > limit) throw new ZkTreeError(`a page of leaves must hold at most ${limit} commitments`)
  const commitments = page.commitments.map((c: unknown) => {
    if (typeof c !== 'string' || !DECIMAL.test(c)) throw new ZkTreeError('a leaf is not a decimal string')
    const v = BigInt(c)
    if (v < 1n || v >= FIELD_P) throw new ZkTreeError('a leaf is not a field element in [1, p)')
    return v
  })
  return { commitments, leafCount: page.leafCount as number, root: BigInt(page.root).toString() }
}
