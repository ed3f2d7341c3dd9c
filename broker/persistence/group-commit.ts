/**
 * Group commit for one better-sqlite3 connection. Every write runs at once, synchronously,
 * inside a transaction that stays open until the end of the current event-loop turn; then
 * one COMMIT ends the group, and the callers' promises settle once the group is durable, in
 * the order the calls were made.
 *
 * Durable means fsynced when a `sync` function is given: the COMMIT itself then runs with
 * SQLite at synchronous = NORMAL (it writes the WAL, it does not fsync it) and `sync`
 * fsyncs the WAL on libuv's thread pool. While that fsync runs, the event loop goes on and
 * the next group collects; one fsync at a time, each covering every group committed before
 * it started. SQLite's own synchronous = FULL gives the same guarantee with the fsync inside
 * COMMIT, which blocks the event loop for the whole fsync (0.3–6 ms on the test machine, per
 * group) and was the limit on throughput (bench/persistence.ts).
 *
 * Settling in call order is not a nicety: Aedes drops a packet whose broker counter is not
 * above the last one a client saw, so a later packet that overtakes an earlier one makes a
 * live subscriber skip the earlier one (see baselines.md, "Durable persistence").
 */
import type { Database, Statement } from 'better-sqlite3'

/** Most operations in one transaction: past this the group commits at once, bounding the WAL growth of a burst. */
export const BATCH_OPS_MAX = 4_096

/** Running totals since the connection was opened, for metrics and benchmarks. */
export interface GroupCommitStats {
  /** Transactions committed. */
  commits: number
  /** Operations settled by those commits (writes and the reads queued behind them). */
  operations: number
  /** Time spent in COMMIT on the main thread (with SQLite's synchronous = FULL, the fsync too), in ms. */
  commitMs: number
  /** fsyncs made by `sync` (each covers one or more commits). */
  syncs: number
  /** Wall time from the start to the end of those fsyncs (off the main thread), in ms. */
  syncMs: number
}

/** Makes every committed group durable, off the main thread, and calls back (with an error if it could not). */
export type SyncFunction = (done: (err: Error | null) => void) => void

interface Waiter {
  resolve: (value: unknown) => void
  reject: (err: unknown) => void
  ok: boolean
  value: unknown
}

export class GroupCommit {
  readonly #db: Database
  readonly #begin: Statement
  readonly #commit: Statement
  readonly #rollback: Statement
  readonly #opsMax: number
  readonly #sync: SyncFunction | null
  readonly #onCommitError: (err: unknown) => void
  readonly #onSyncError: (err: unknown) => void
  /** True while a transaction holds writes that are not committed yet. */
  #open = false
  /** The operations waiting for the open transaction's commit, in call order. */
  #waiting: Waiter[] = []
  /** Committed, waiting for the next fsync. */
  #unsynced: Waiter[] = []
  /** Committed, covered by the fsync in progress. */
  #syncing: Waiter[] | null = null
  #timer: NodeJS.Immediate | null = null
  #closed = false
  #idle: Array<() => void> = []
  readonly #stats: GroupCommitStats = { commits: 0, operations: 0, commitMs: 0, syncs: 0, syncMs: 0 }

  constructor (db: Database, options: {
    opsMax?: number
    /** Makes commits durable off the main thread; null when COMMIT itself is durable enough. */
    sync: SyncFunction | null
    onCommitError: (err: unknown) => void
    onSyncError: (err: unknown) => void
  }) {
    this.#db = db
    this.#begin = db.prepare('BEGIN')
    this.#commit = db.prepare('COMMIT')
    this.#rollback = db.prepare('ROLLBACK')
    this.#opsMax = options.opsMax ?? BATCH_OPS_MAX
    this.#sync = options.sync
    this.#onCommitError = options.onCommitError
    this.#onSyncError = options.onSyncError
  }

  /**
   * Runs `fn` now inside the open transaction and resolves with its result once that
   * transaction is durable, after every earlier call. A throw in `fn` rejects, also in
   * order; what `fn` wrote before throwing stays in the transaction, so an operation of
   * several statements must be atomic on its own (a better-sqlite3 `transaction`, which
   * becomes a savepoint inside ours).
   */
  write<T> (fn: () => T): Promise<T> {
    if (this.#closed) return Promise.reject(closedError())
    this.#openTransaction()
    let value: T
    try {
      value = fn()
    } catch (err) {
      return this.#enqueue(this.#waiting, false, err) as Promise<T>
    }
    return this.#enqueue(this.#waiting, true, value) as Promise<T>
  }

  /**
   * Runs `fn` now inside the open transaction and resolves at once, without waiting for
   * it to be durable (that happens with the group). Only for a write whose caller must not
   * be held back; each user says why.
   */
  writeEager (fn: () => void): Promise<void> {
    if (this.#closed) return Promise.reject(closedError())
    this.#openTransaction()
    try {
      fn()
    } catch (err) {
      return Promise.reject(err)
    }
    return Promise.resolve()
  }

  /**
   * Runs `fn` (a read) now and resolves with its result after every earlier call has
   * settled, so that a caller never acts on a write that is not durable yet.
   */
  read<T> (fn: () => T): Promise<T> {
    if (this.#closed) return Promise.reject(closedError())
    let ok = true
    let value: unknown
    try {
      value = fn()
    } catch (err) {
      ok = false
      value = err
    }
    // Behind the latest group that is not durable yet, if any.
    const behind = this.#open ? this.#waiting : this.#unsynced.length > 0 ? this.#unsynced : this.#syncing
    if (behind !== null) return this.#enqueue(behind, ok, value) as Promise<T>
    return ok ? Promise.resolve(value as T) : Promise.reject(value)
  }

  /** Commits the open transaction now; its waiters settle when it is durable. */
  flush (): void {
    if (this.#timer !== null) {
      clearImmediate(this.#timer)
      this.#timer = null
    }
    if (!this.#open) return
    const waiting = this.#waiting
    this.#waiting = []
    this.#open = false
    const started = performance.now()
    try {
      this.#commit.run()
    } catch (err) {
      // SQLite rolls some failures back by itself; whatever is left must not be committed
      // later by an unrelated group.
      if (this.#db.inTransaction) this.#rollback.run()
      for (const waiter of waiting) waiter.reject(err)
      this.#onCommitError(err)
      return
    }
    this.#stats.commits++
    this.#stats.operations += waiting.length
    this.#stats.commitMs += performance.now() - started
    if (this.#sync === null) {
      settle(waiting, null)
      return
    }
    for (const waiter of waiting) this.#unsynced.push(waiter)
    this.#startSync()
  }

  get stats (): Readonly<GroupCommitStats> {
    return { ...this.#stats }
  }

  /**
   * Commits what is open, waits until every committed group is durable and refuses every
   * later call. Safe to call twice.
   */
  async close (): Promise<void> {
    if (!this.#closed) {
      this.flush()
      this.#closed = true
    }
    if (this.#syncing === null && this.#unsynced.length === 0) return
    await new Promise<void>(resolve => this.#idle.push(resolve))
  }

  #startSync (): void {
    const sync = this.#sync
    if (sync === null || this.#syncing !== null || this.#unsynced.length === 0) return
    const batch = this.#unsynced
    this.#unsynced = []
    this.#syncing = batch
    const started = performance.now()
    sync(err => {
      this.#stats.syncs++
      this.#stats.syncMs += performance.now() - started
      this.#syncing = null
      // Reads queued behind this batch while it was in flight were pushed onto it.
      settle(batch, err)
      if (err !== null) this.#onSyncError(err)
      this.#startSync()
      if (this.#syncing === null && this.#unsynced.length === 0) {
        for (const resolve of this.#idle.splice(0)) resolve()
      }
    })
  }

  #openTransaction (): void {
    if (this.#open) return
    this.#begin.run()
    this.#open = true
    this.#timer = setImmediate(() => {
      this.#timer = null
      this.flush()
    })
  }

  #enqueue (list: Waiter[], ok: boolean, value: unknown): Promise<unknown> {
    const promise = new Promise((resolve, reject) => {
      list.push({ resolve, reject, ok, value })
    })
    if (list === this.#waiting && this.#waiting.length >= this.#opsMax) this.flush()
    return promise
  }
}

/** Settles waiters in order: with their own outcome, or all rejected when the group could not be made durable. */
function settle (waiters: Waiter[], err: Error | null): void {
  for (const waiter of waiters) {
    if (err !== null) waiter.reject(err)
    else if (waiter.ok) waiter.resolve(waiter.value)
    else waiter.reject(waiter.value)
  }
}

function closedError (): Error {
  return new Error('the SQLite persistence is destroyed')
}
