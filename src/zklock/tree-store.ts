/**
 * The identity tree, persisted in the hub's database (migration 6): one leaf per device,
 * appended in one transaction with the new root and the new frontier. The tree in memory is
 * only the frontier (src/zklock/tree.ts); the leaves are served to apps, which compute their
 * own paths. Roots are kept forever in `zk_roots`, but only the current one and the last
 * `rootHistory` before it are accepted (`isKnownRoot`).
 *
 * Several hub processes may share the database (one SQLite file, or a PostgreSQL server for
 * a fleet on several hosts). Each keeps its own copy of the frontier, since rebuilding it
 * costs Poseidon hashes, and compares it with the leaf count the database holds before using
 * it: the tree is append-only and its leaves are numbered from 0 without gaps, so a copy with
 * as many leaves as the database is the database's tree. The count is the primary key's
 * largest index, one index lookup on either engine.
 */
import { BadRequestError, ConflictError, ForbiddenError, NotFoundError } from '../errors.js'
import { constraintViolated, type SqlDatabase } from '../store/sql.js'
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

export interface TreeRoots {
  root: string
  leafCount: number
  /** Newest first, as recentRoots() gives them. */
  recent: RootRecord[]
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

/** The advisory lock appends (and rebuilds of the frontier) hold: one writer of the tree at a time, fleet-wide. */
const TREE_LOCK = 'zk_tree'

const COUNT_SQL = 'SELECT coalesce(max(idx) + 1, 0) AS n FROM zk_leaves'

export class TreeStore {
  readonly rootHistory: number
  readonly depth: number
  readonly #db: SqlDatabase
  #tree: IncrementalMerkleTree

  private constructor (db: SqlDatabase, depth: number, rootHistory: number, tree: IncrementalMerkleTree) {
    this.#db = db
    this.depth = depth
    this.rootHistory = rootHistory
    this.#tree = tree
  }

  /** The tree as the database holds it (rebuilding its frontier from the leaves when that is missing or stale). */
  static async open (db: SqlDatabase, options: TreeStoreOptions = {}): Promise<TreeStore> {
    const history = options.rootHistory ?? ROOT_HISTORY_DEFAULT
    if (!Number.isSafeInteger(history) || history < 0) throw new RangeError('rootHistory must be a non-negative integer')
    const depth = options.depth ?? TREE_DEPTH
    const tree = await db.transaction(async () => {
      await db.lock(TREE_LOCK)
      return load(db, depth)
    })
    return new TreeStore(db, depth, history, tree)
  }

  /**
   * Adds a device's commitment (its leaf, Poseidon1(secret)) as the next leaf, in one
   * transaction with the new root and frontier. 400: not a field element in [1, p), or not
   * a device; 404: unknown principal; 403: revoked; 409: the device already has a leaf, the
   * commitment is already in the tree, or the tree is full.
   */
  async addCommitment (deviceId: string, commitment: string | bigint, nowMs = Date.now()): Promise<AddedCommitment> {
    const leaf = parseCommitment(commitment)
    const text = leaf.toString()
    const db = this.#db
    let next: ReturnType<IncrementalMerkleTree['preview']>
    try {
      next = await db.transaction(async () => {
        // One appender at a time across processes: everything read below is what the
        // previous appender committed, so two processes never append at the same index.
        await db.lock(TREE_LOCK)
        const principal = await db.get<{ role: string, revoked_ms: number | null }>('SELECT role, revoked_ms FROM principals WHERE id = ?', [deviceId])
        if (!principal) throw new NotFoundError(`no principal with id ${JSON.stringify(deviceId)}`)
        if (principal.role !== 'device') throw new BadRequestError('only a device principal can have an identity commitment')
        if (principal.revoked_ms !== null) throw new ForbiddenError('this principal is revoked')
        if (await db.get('SELECT idx FROM zk_leaves WHERE device_id = ?', [deviceId])) throw new ConflictError('this device already has a commitment in the identity tree')
        if (await db.get('SELECT idx FROM zk_leaves WHERE commitment = ?', [text])) throw new ConflictError('this commitment is already in the identity tree')
        // Another process may have appended since this one last looked: catch up rather than fork.
        let tree = this.#tree
        if (await leafCount(db) !== tree.size) tree = this.#adopt(await load(db, this.depth))
        if (tree.size >= tree.capacity) throw new ConflictError('the identity tree is full')
        const preview = tree.preview(leaf)
        await db.run('INSERT INTO zk_leaves (idx, commitment, device_id, added_ms) VALUES (?, ?, ?, ?)', [preview.index, text, deviceId, nowMs])
        await persist(db, preview.state, nowMs)
        return preview
      })
    } catch (err) {
      // The checks above run under the lock, so this is only a safety net.
      if (constraintViolated(err) === 'unique') throw new ConflictError('this device or this commitment is already in the identity tree')
      throw err
    }
    // Adopted in memory only once the transaction has committed.
    if (this.#tree.size === next.index) this.#tree.commit(next)
    else this.#adopt(new IncrementalMerkleTree(this.depth, next.state))
    return { index: next.index, commitment: text, deviceId, root: next.root.toString(), leafCount: next.state.size, added: nowMs }
  }

  /** Adopts `tree` unless the copy in memory is already as far along (an append of this process that committed meanwhile). */
  #adopt (tree: IncrementalMerkleTree): IncrementalMerkleTree {
    if (tree.size > this.#tree.size) this.#tree = tree
    return this.#tree
  }

  /**
   * The tree as committed, also by other processes sharing the database: one indexed read,
   * and a reload only when another process appended.
   */
  async #current (): Promise<IncrementalMerkleTree> {
    const db = this.#db
    if (await leafCount(db) === this.#tree.size) return this.#tree
    return this.#adopt(await db.transaction(async () => {
      await db.lock(TREE_LOCK)
      return load(db, this.depth)
    }))
  }

  async leafCount (): Promise<number> { return (await this.#current()).size }

  async currentRoot (): Promise<string> { return (await this.#current()).root.toString() }

  /** True for the current root and the last `rootHistory` roots before it. */
  async isKnownRoot (root: string | bigint): Promise<boolean> {
    let text: string
    try {
      text = (typeof root === 'bigint' ? root : BigInt(String(root))).toString()
    } catch {
      return false
    }
    const tree = await this.#current()
    if (text === tree.root.toString()) return true
    const row = await this.#db.get<{ leaf_count: number }>('SELECT leaf_count FROM zk_roots WHERE root = ?', [text])
    return row !== undefined && row.leaf_count < tree.size && row.leaf_count >= tree.size - this.rootHistory
  }

  /** The accepted roots, newest first: the current one, then up to `rootHistory` before it. */
  async recentRoots (): Promise<RootRecord[]> {
    return this.#recentRoots((await this.#current()).size)
  }

  /** The current root and leaf count with the roots accepted beside it, all of one tree. */
  async roots (): Promise<TreeRoots> {
    const tree = await this.#current()
    return { root: tree.root.toString(), leafCount: tree.size, recent: await this.#recentRoots(tree.size) }
  }

  async #recentRoots (size: number): Promise<RootRecord[]> {
    const rows = await this.#db.all<{ root: string, leaf_count: number, created_ms: number }>(
      'SELECT root, leaf_count, created_ms FROM zk_roots WHERE leaf_count >= ? AND leaf_count <= ? ORDER BY leaf_count DESC',
      [Math.max(0, size - this.rootHistory), size],
    )
    return rows.map(r => ({ root: r.root, leafCount: r.leaf_count, created: r.created_ms }))
  }

  /** Leaves `after`, `after + 1`, … (at most `limit`), for apps that keep their own copy of the tree. */
  async leaves (after = 0, limit = LEAVES_LIMIT_DEFAULT): Promise<LeafPage> {
    if (!Number.isSafeInteger(after) || after < 0) throw new BadRequestError('after must be a non-negative integer')
    if (!Number.isSafeInteger(limit) || limit < 1 || limit > LEAVES_LIMIT_MAX) throw new BadRequestError(`limit must be an integer in [1, ${LEAVES_LIMIT_MAX}]`)
    // The page stops at the tree it reports: leaves are never changed or removed, so the
    // first `size` of them are the ones this root was computed from, whatever was appended
    // since (no snapshot of the database needed).
    const tree = await this.#current()
    const rows = await this.#db.all<{ commitment: string }>('SELECT commitment FROM zk_leaves WHERE idx >= ? AND idx < ? ORDER BY idx LIMIT ?', [after, tree.size, limit])
    return { start: after, commitments: rows.map(r => r.commitment), leafCount: tree.size, root: tree.root.toString() }
  }
}

async function leafCount (db: SqlDatabase): Promise<number> {
  return (await db.get<{ n: number }>(COUNT_SQL))!.n
}

/**
 * The tree as the database holds it: from the saved frontier, or rebuilt from the leaves
 * (and saved) when that is missing or stale. Call it inside a transaction holding the tree's
 * lock, so that no append lands between the reads.
 */
async function load (db: SqlDatabase, depth: number): Promise<IncrementalMerkleTree> {
  const count = await leafCount(db)
  const row = await db.get<FrontierRow>('SELECT leaf_count, root, frontier FROM zk_frontier WHERE id = 1')
  if (row && row.leaf_count === count) {
    try {
      const frontier = JSON.parse(row.frontier) as string[]
      return new IncrementalMerkleTree(depth, { size: count, frontier: frontier.map(BigInt), root: BigInt(row.root) })
    } catch {
      // A frontier that does not match its root: rebuild below.
    }
  }
  const leaves = await db.all<{ commitment: string }>('SELECT commitment FROM zk_leaves ORDER BY idx')
  const tree = IncrementalMerkleTree.fromLeaves(leaves.map(r => BigInt(r.commitment)), depth)
  await persist(db, tree.state(), Date.now())
  return tree
}

async function persist (db: SqlDatabase, state: FrontierState, nowMs: number): Promise<void> {
  const root = state.root!.toString()
  // A root seen before (the frontier rebuilt at the same size) keeps its first record.
  await db.run('INSERT INTO zk_roots (root, leaf_count, created_ms) VALUES (?, ?, ?) ON CONFLICT DO NOTHING', [root, state.size, nowMs])
  await db.run(
    'INSERT INTO zk_frontier (id, leaf_count, root, frontier) VALUES (1, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET leaf_count = excluded.leaf_count, root = excluded.root, frontier = excluded.frontier',
    [state.size, root, JSON.stringify(state.frontier.map(String))],
  )
}
