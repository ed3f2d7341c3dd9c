/**
 * The identity tree, persisted in SQLite (migration 6): one leaf per device, appended in one
 * transaction with the new root and the new frontier. The tree in memory is only the
 * frontier (src/zklock/tree.ts); the leaves are served to apps, which compute their own
 * paths. Roots are kept forever in `zk_roots`, but only the current one and the last
 * `rootHistory` before it are accepted (`isKnownRoot`).
 */
import type { Database, Statement } from 'better-sqlite3'
import { BadRequestError, ConflictError, ForbiddenError, NotFoundError } from '../errors.js'
import { FIELD_P, IncrementalMerkleTree, TREE_DEPTH, type FrontierState } from './tree.js'

export interface TreeStoreOptions {
  /** Roots accepted besides the current one: the last N before it. Default 64. */
  rootHistory?: number
  /** Tree depth; 20 in production (the circuit's), smaller only in tests. */
  depth?: number
}

export interface AddedCommitment {
  index: number
  commitment: string
  deviceId: string
  root: string
  leafCount: number
  added: number
}

export interface RootRecord {
  root: string
  leafCount: number
  created: number
}

export interface LeafPage {
  /** Index of the first commitment in `commitments` (= the `after` asked for). */
  start: number
  /** Decimal strings, in leaf order: leaf `start + i` is `commitments[i]`. */
  commitments: string[]
  /** The tree's size and root when the page was read: a client holding every leaf up to here can check its root. */
  leafCount: number
  root: string
}

export const ROOT_HISTORY_DEFAULT = 64
export const LEAVES_LIMIT_MAX = 10_000
export const LEAVES_LIMIT_DEFAULT = 1000
/** Longest decimal string of a field element (p has 77 digits). */
const DECIMAL_DIGITS_MAX = 78

/**
 * Parses a commitment (a decimal string or a bigint) into a field element in [1, p);
 * BadRequestError otherwise. The canonical form (no leading zeros) is what is stored.
 */
export function parseCommitment (value: string | bigint): bigint {
  let v: bigint
  if (typeof value === 'bigint') v = value
  else if (typeof value === 'string' && /^[0-9]+$/.test(value) && value.length <= DECIMAL_DIGITS_MAX) v = BigInt(value)
  else throw new BadRequestError('a commitment must be a decimal string')
  if (v < 1n || v >= FIELD_P) throw new BadRequestError('a commitment must be a field element in [1, p)')
  return v
}

interface FrontierRow { leaf_count: number, root: string, frontier: string }

export class TreeStore {
  readonly rootHistory: number
  readonly depth: number
  readonly #db: Database
  #tree: IncrementalMerkleTree
  readonly #count: Statement<[], { n: number }>
  readonly #allLeaves: Statement<[], string>
  readonly #insertLeaf: Statement<[number, string, string, number]>
  readonly #insertRoot: Statement<[string, number, number]>
  readonly #saveFrontier: Statement<[number, string, string]>
  readonly #getFrontier: Statement<[], FrontierRow>
  readonly #byCommitment: Statement<[string], { idx: number }>
  readonly #byDevice: Statement<[string], { idx: number }>
  readonly #principal: Statement<[string], { role: string, revoked_ms: number | null }>
  readonly #rootCount: Statement<[string], { leaf_count: number }>
  readonly #recent: Statement<[number], { root: string, leaf_count: number, created_ms: number }>
  readonly #page: Statement<[number, number], string>

  constructor (db: Database, options: TreeStoreOptions = {}) {
    const history = options.rootHistory ?? ROOT_HISTORY_DEFAULT
    if (!Number.isSafeInteger(history) || history < 0) throw new RangeError('rootHistory must be a non-negative integer')
    this.rootHistory = history
    this.depth = options.depth ?? TREE_DEPTH
    this.#db = db
    this.#count = db.prepare('SELECT coalesce(max(idx) + 1, 0) AS n FROM zk_leaves')
    this.#allLeaves = db.prepare<[], { commitment: string }>('SELECT commitment FROM zk_leaves ORDER BY idx').pluck() as unknown as Statement<[], string>
    this.#insertLeaf = db.prepare('INSERT INTO zk_leaves (idx, commitment, device_id, added_ms) VALUES (?, ?, ?, ?)')
    this.#insertRoot = db.prepare('INSERT OR IGNORE INTO zk_roots (root, leaf_count, created_ms) VALUES (?, ?, ?)')
    this.#saveFrontier = db.prepare('INSERT INTO zk_frontier (id, leaf_count, root, frontier) VALUES (1, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET leaf_count = excluded.leaf_count, root = excluded.root, frontier = excluded.frontier')
    this.#getFrontier = db.prepare('SELECT leaf_count, root, frontier FROM zk_frontier WHERE id = 1')
    this.#byCommitment = db.prepare('SELECT idx FROM zk_leaves WHERE commitment = ?')
    this.#byDevice = db.prepare('SELECT idx FROM zk_leaves WHERE device_id = ?')
    this.#principal = db.prepare('SELECT role, revoked_ms FROM principals WHERE id = ?')
    this.#rootCount = db.prepare('SELECT leaf_count FROM zk_roots WHERE root = ?')
    this.#recent = db.prepare('SELECT root, leaf_count, created_ms FROM zk_roots WHERE leaf_count >= ? ORDER BY leaf_count DESC')
    this.#page = db.prepare<[number, number], { commitment: string }>('SELECT commitment FROM zk_leaves WHERE idx >= ? ORDER BY idx LIMIT ?').pluck() as unknown as Statement<[number, number], string>
    this.#tree = this.#load()
  }

  /** The tree as the database holds it: from the saved frontier, or rebuilt from the leaves when it is missing or stale. */
  #load (): IncrementalMerkleTree {
    return this.#db.transaction(() => {
      const count = this.#count.get()!.n
      const row = this.#getFrontier.get()
      if (row && row.leaf_count === count) {
        try {
          const frontier = JSON.parse(row.frontier) as string[]
          return new IncrementalMerkleTree(this.depth, { size: count, frontier: frontier.map(BigInt), root: BigInt(row.root) })
        } catch {
          // A frontier that does not match its root: rebuild below.
        }
      }
      const tree = IncrementalMerkleTree.fromLeaves(this.#allLeaves.all().map(BigInt), this.depth)
      this.#persist(tree.state(), Date.now())
      return tree
    }).immediate()
  }

  #persist (state: FrontierState, nowMs: number): void {
    const root = state.root!.toString()
    this.#insertRoot.run(root, state.size, nowMs)
    this.#saveFrontier.run(state.size, root, JSON.stringify(state.frontier.map(String)))
  }

  /**
   * Adds a device's commitment (its leaf, Poseidon1(secret)) as the next leaf, in one
   * transaction with the new root and frontier. 400: not a field element in [1, p), or not
   * a device; 404: unknown principal; 403: revoked; 409: the device already has a leaf, the
   * commitment is already in the tree, or the tree is full.
   */
  addCommitment (deviceId: string, commitment: string | bigint, nowMs = Date.now()): AddedCommitment {
    const leaf = parseCommitment(commitment)
    const text = leaf.toString()
    const next = this.#db.transaction(() => {
      const principal = this.#principal.get(deviceId)
      if (!principal) throw new NotFoundError(`no principal with id ${JSON.stringify(deviceId)}`)
      if (principal.role !== 'device') throw new BadRequestError('only a device principal can have an identity commitment')
      if (principal.revoked_ms !== null) throw new ForbiddenError('this principal is revoked')
      if (this.#byDevice.get(deviceId)) throw new ConflictError('this device already has a commitment in the identity tree')
      if (this.#byCommitment.get(text)) throw new ConflictError('this commitment is already in the identity tree')
      // Another process may have appended since this one loaded: reload rather than fork.
      if (this.#count.get()!.n !== this.#tree.size) this.#tree = this.#load()
      if (this.#tree.size >= this.#tree.capacity) throw new ConflictError('the identity tree is full')
      const preview = this.#tree.preview(leaf)
      this.#insertLeaf.run(preview.index, text, deviceId, nowMs)
      this.#persist(preview.state, nowMs)
      return preview
    }).immediate()
    // Adopted in memory only once the transaction has committed.
    this.#tree.commit(next)
    return { index: next.index, commitment: text, deviceId, root: next.root.toString(), leafCount: next.state.size, added: nowMs }
  }

  /**
   * The tree as committed, also by other processes sharing the database file (cluster
   * mode): one indexed read, and a reload only when another process appended.
   */
  #current (): IncrementalMerkleTree {
    if (this.#count.get()!.n !== this.#tree.size) this.#tree = this.#load()
    return this.#tree
  }

  get leafCount (): number { return this.#current().size }

  currentRoot (): string { return this.#current().root.toString() }

  /** True for the current root and the last `rootHistory` roots before it. */
  isKnownRoot (root: string | bigint): boolean {
    let text: string
    try {
      text = (typeof root === 'bigint' ? root : BigInt(String(root))).toString()
    } catch {
      return false
    }
    const tree = this.#current()
    if (text === tree.root.toString()) return true
    const row = this.#rootCount.get(text)
    return row !== undefined && row.leaf_count < tree.size && row.leaf_count >= tree.size - this.rootHistory
  }

  /** The accepted roots, newest first: the current one, then up to `rootHistory` before it. */
  recentRoots (): RootRecord[] {
    const size = this.#current().size
    return this.#recent.all(Math.max(0, size - this.rootHistory))
      .filter(r => r.leaf_count <= size)
      .map(r => ({ root: r.root, leafCount: r.leaf_count, created: r.created_ms }))
  }

  /** Leaves `after`, `after + 1`, … (at most `limit`), for apps that keep their own copy of the tree. */
  leaves (after = 0, limit = LEAVES_LIMIT_DEFAULT): LeafPage {
    if (!Number.isSafeInteger(after) || after < 0) throw new BadRequestError('after must be a non-negative integer')
    if (!Number.isSafeInteger(limit) || limit < 1 || limit > LEAVES_LIMIT_MAX) throw new BadRequestError(`limit must be an integer in [1, ${LEAVES_LIMIT_MAX}]`)
    return this.#db.transaction(() => {
      const leafCount = this.#count.get()!.n
      const row = this.#getFrontier.get()
      return { start: after, commitments: this.#page.all(after, limit), leafCount, root: row && row.leaf_count === leafCount ? row.root : this.currentRoot() }
    }).deferred()
  }
}
