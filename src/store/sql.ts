/**
 * The one interface every repository of the hub's records is written against, so that the
 * same code runs on the embedded SQLite file (one host) and on a PostgreSQL server (a fleet
 * across hosts). Two drivers implement it: `sqlite-sql.ts` and `postgres-sql.ts`.
 *
 * The SQL the repositories write is the subset both engines read alike: `?` placeholders
 * (the PostgreSQL driver numbers them), `INSERT … ON CONFLICT`, `RETURNING`, integers that
 * fit in 53 bits (both drivers return them as numbers), bytes as Buffers, no booleans in
 * result rows. Where the engines differ, `dialect` says which one runs.
 */

export type SqlValue = string | number | Buffer | null
export type SqlDialect = 'sqlite' | 'postgres'

export interface SqlRunResult {
  /** Rows the statement inserted, updated or deleted. */
  changes: number
}

export interface SqlDatabase {
  readonly dialect: SqlDialect
  /** The first row, or undefined. */
  get<Row> (sql: string, params?: readonly SqlValue[]): Promise<Row | undefined>
  all<Row> (sql: string, params?: readonly SqlValue[]): Promise<Row[]>
  run (sql: string, params?: readonly SqlValue[]): Promise<SqlRunResult>
  /**
   * Runs `fn` in one transaction: every statement issued from within `fn`'s async context
   * (however deep, through any repository) joins it. Commits when `fn` resolves, rolls back
   * when it throws. A nested call joins the outer transaction. `fn` must only wait for the
   * database: the transaction holds a connection (PostgreSQL) or the file's write lock
   * (SQLite) until it ends.
   */
  transaction<T> (fn: () => Promise<T>): Promise<T>
  /**
   * Inside a transaction: waits until no other transaction holds the lock `name`, and holds
   * it until this one ends. For read-then-write sequences that must not interleave across
   * processes (the audit chain's head, the ZK tree's next leaf). On SQLite every write
   * transaction already holds the file's one write lock, so this returns at once.
   */
  lock (name: string): Promise<void>
  /** Closes the connections; safe to call more than once. */
  close (): Promise<void>
}

/** The constraint a failed statement broke, or null when it failed for another reason. */
export type ConstraintKind = 'unique' | 'foreign_key' | 'check' | 'not_null'

const SQLITE_CONSTRAINTS: Record<string, ConstraintKind> = {
  SQLITE_CONSTRAINT_UNIQUE: 'unique',
  SQLITE_CONSTRAINT_PRIMARYKEY: 'unique',
  SQLITE_CONSTRAINT_FOREIGNKEY: 'foreign_key',
  SQLITE_CONSTRAINT_CHECK: 'check',
  SQLITE_CONSTRAINT_NOTNULL: 'not_null',
}
// PostgreSQL's SQLSTATE class 23, "integrity constraint violation".
const POSTGRES_CONSTRAINTS: Record<string, ConstraintKind> = {
  23505: 'unique',
  23503: 'foreign_key',
  23514: 'check',
  23502: 'not_null',
}

/** Which constraint `err` reports, for either engine: repositories map it to a typed error. */
export function constraintViolated (err: unknown): ConstraintKind | null {
  const code = (err as { code?: unknown } | null)?.code
  if (typeof code !== 'string') return null
  return SQLITE_CONSTRAINTS[code] ?? POSTGRES_CONSTRAINTS[code] ?? null
}

// SQLSTATE classes and codes that say "the server is not there or not taking work now",
// as opposed to "this statement is wrong": connection exceptions (08), the server shutting
// down or starting (57P01–57P03), too many connections (53300), a statement cancelled by
// statement_timeout (57014).
const POSTGRES_UNAVAILABLE = /^(08...|57P0[123]|53300|57014)$/
const SOCKET_ERRORS = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EPIPE', 'EAI_AGAIN'])
// node-postgres's own errors about its connections carry no code, only these messages.
const PG_CONNECTION_MESSAGES = /^(Connection terminated|timeout exceeded when trying to connect|Client has encountered a connection error|Cannot use a pool after calling end)/

/**
 * True when `err` says the database cannot be reached or is too busy (a server down, a
 * network cut, SQLite's write lock held past the busy timeout by another process): the
 * request may succeed later, so callers answer "unavailable" (HTTP 503, CONNACK 3), not 500.
 */
export function databaseUnavailable (err: unknown): boolean {
  if (err === null || typeof err !== 'object') return false
  const { code, message } = err as { code?: unknown, message?: unknown }
  if (typeof code === 'string') {
    return code === 'SQLITE_BUSY' || POSTGRES_UNAVAILABLE.test(code) || SOCKET_ERRORS.has(code)
  }
  return typeof message === 'string' && PG_CONNECTION_MESSAGES.test(message)
}
