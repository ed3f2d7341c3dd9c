/**
 * SqlDatabase over one better-sqlite3 connection (the embedded default).
 *
 * better-sqlite3 is synchronous, which is why it is fast: a statement costs microseconds and
 * no round trip. The one thing to guard is the transaction: `BEGIN` and `COMMIT` bracket an
 * async function, and while it awaits, other code could issue statements on the same
 * connection and land inside it. So statements from outside the open transaction's async
 * context wait until it ends, and transactions run one at a time.
 */
import { AsyncLocalStorage } from 'node:async_hooks'
import type { Database, Statement } from 'better-sqlite3'
import type { SqlDatabase, SqlRunResult, SqlValue } from './sql.js'

/** Prepared statements kept per connection; the repositories use a few dozen distinct texts. */
const STATEMENTS_MAX = 1_000

interface OpenTransaction {
  /** Settles when the transaction has committed or rolled back. */
  ended: Promise<void>
}

export class SqliteSql implements SqlDatabase {
  readonly dialect = 'sqlite' as const
  /** The connection itself, for what only SQLite has (backups, PRAGMAs, the broker's own tables). */
  readonly connection: Database
  readonly #statements = new Map<string, Statement<unknown[]>>()
  readonly #context = new AsyncLocalStorage<OpenTransaction>()
  #open: OpenTransaction | null = null
  #closed = false

  constructor (connection: Database) {
    this.connection = connection
  }

  get<Row> (sql: string, params: readonly SqlValue[] = []): Promise<Row | undefined> {
    return this.#execute(() => this.#prepare(sql).get(...params) as Row | undefined)
  }

  all<Row> (sql: string, params: readonly SqlValue[] = []): Promise<Row[]> {
    return this.#execute(() => this.#prepare(sql).all(...params) as Row[])
  }

  run (sql: string, params: readonly SqlValue[] = []): Promise<SqlRunResult> {
    return this.#execute(() => ({ changes: this.#prepare(sql).run(...params).changes }))
  }

  async transaction<T> (fn: () => Promise<T>): Promise<T> {
    if (this.#open && this.#context.getStore() === this.#open) return fn()
    while (this.#open) await this.#open.ended
    let end!: () => void
    const open: OpenTransaction = { ended: new Promise(resolve => { end = resolve }) }
    this.#open = open
    try {
      // IMMEDIATE takes the write lock now, so two processes sharing the file cannot both
      // read the same state and then both write from it.
      this.connection.exec('BEGIN IMMEDIATE')
      const result = await this.#context.run(open, fn)
      this.connection.exec('COMMIT')
      return result
    } catch (err) {
      if (this.connection.inTransaction) this.connection.exec('ROLLBACK')
      throw err
    } finally {
      this.#open = null
      end()
    }
  }

  async lock (_name: string): Promise<void> {
    if (!this.#open || this.#context.getStore() !== this.#open) throw new Error('lock() is only meaningful inside a transaction')
    // BEGIN IMMEDIATE already holds the file's single write lock.
  }

  async close (): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    while (this.#open) await this.#open.ended
    this.connection.close()
  }

  /**
   * Runs a statement now, unless a transaction of another async context is open: then once
   * it has ended. Now means in the caller's tick, so a statement issued just before another
   * context begins a transaction runs before that BEGIN, not inside it.
   */
  #execute<T> (statement: () => T): Promise<T> {
    const open = this.#open
    if (open && this.#context.getStore() !== open) return open.ended.then(() => this.#execute(statement))
    try {
      return Promise.resolve(statement())
    } catch (err) {
      return Promise.reject(err)
    }
  }

  #prepare (sql: string): Statement<unknown[]> {
    let statement = this.#statements.get(sql)
    if (!statement) {
      if (this.#statements.size >= STATEMENTS_MAX) this.#statements.delete(this.#statements.keys().next().value as string)
      statement = this.connection.prepare(sql)
      this.#statements.set(sql, statement)
    }
    return statement
  }
}
