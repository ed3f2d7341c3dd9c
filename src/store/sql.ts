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
