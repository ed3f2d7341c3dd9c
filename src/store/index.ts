/**
 * The hub's SQLite store: one database file and the tables' repositories over it.
 */
import { openDatabase, type Database } from './database.js'
import { PrincipalStore } from './principals.js'
import { ProvisioningStore } from './provisioning.js'
import { SqliteSql } from './sqlite-sql.js'
import type { SqlDatabase } from './sql.js'

export { openDatabase, openSqlite, openPostgres, BUSY_TIMEOUT_MS } from './database.js'
export { constraintViolated, type SqlDatabase, type SqlDialect, type SqlValue, type SqlRunResult, type ConstraintKind } from './sql.js'
export { SqliteSql } from './sqlite-sql.js'
export { PostgresSql, type PostgresOptions } from './postgres-sql.js'
export { bumpChangeCounter, readChangeCounter } from './change-counters.js'
export { migrate, userVersion, MIGRATIONS, SCHEMA_VERSION, type Migration } from './migrations.js'
export { parsePublicKey, principalIdFromPublicKey, PUBLIC_KEY_BYTES } from './public-key.js'
export {
  PrincipalStore, ROLES, NAME_CHARS_MAX, LIST_LIMIT_MAX,
  type Role, type Principal, type CreatePrincipalInput, type ListPrincipalsQuery, type RevokeResult,
} from './principals.js'
export { ProvisioningStore, type ProvisioningToken, type CreateTokenInput } from './provisioning.js'
export type { Database }

export interface StoreOptions {
  /** Path of the SQLite file; its directory is created (mode 0700) when missing. */
  file: string
}

export interface Store {
  readonly db: Database
  /** The same database, through the interface both engines implement. */
  readonly sql: SqlDatabase
  readonly principals: PrincipalStore
  readonly provisioning: ProvisioningStore
  /** Closes the database; safe to call more than once. */
  close (): Promise<void>
}

export function openStore (options: StoreOptions): Store {
  const db = openDatabase(options.file)
  const sql = new SqliteSql(db)
  let principals: PrincipalStore
  let provisioning: ProvisioningStore
  try {
    principals = new PrincipalStore(db)
    provisioning = new ProvisioningStore(db, principals)
  } catch (err) {
    db.close()
    throw err
  }
  let closed = false
  return {
    db,
    sql,
    principals,
    provisioning,
    async close () {
      if (closed) return
      closed = true
      await sql.close()
    },
  }
}
