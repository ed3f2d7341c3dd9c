/**
 * The hub's store: one database (the embedded SQLite file, or a PostgreSQL server shared by
 * a fleet's hosts) and the repositories of the registry over it.
 */
import { openPostgres, openSqlite, type Database } from './database.js'
import { PrincipalStore } from './principals.js'
import { ProvisioningStore } from './provisioning.js'
import type { PostgresOptions, PostgresSql } from './postgres-sql.js'
import type { SqliteSql } from './sqlite-sql.js'
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

export interface SqliteStoreOptions {
  /** Path of the SQLite file; its directory is created (mode 0700) when missing. */
  file: string
  url?: undefined
}

/** A PostgreSQL database (its URL, pool size, statement timeout), for hub processes on several hosts. */
export interface PostgresStoreOptions extends PostgresOptions {
  file?: undefined
}

export type StoreOptions = SqliteStoreOptions | PostgresStoreOptions

export interface Store {
  /** The database, through the interface both engines implement. */
  readonly sql: SqlDatabase
  readonly principals: PrincipalStore
  readonly provisioning: ProvisioningStore
  /** Closes the database; safe to call more than once. */
  close (): Promise<void>
}

export interface SqliteStore extends Store {
  readonly sql: SqliteSql
}

export interface PostgresStore extends Store {
  readonly sql: PostgresSql
}

/** Opens the SQLite file (`{ file }`) or the PostgreSQL database (`{ url }`), its schema brought up to date. */
export async function openStore (options: SqliteStoreOptions): Promise<SqliteStore>
export async function openStore (options: PostgresStoreOptions): Promise<PostgresStore>
export async function openStore (options: StoreOptions): Promise<Store>
export async function openStore (options: StoreOptions): Promise<Store> {
  if (options.url !== undefined) {
    return repositories(await openPostgres(options))
  }
  return repositories(openSqlite(options.file))
}

function repositories<Sql extends SqlDatabase> (sql: Sql): Store & { sql: Sql } {
  const principals = new PrincipalStore(sql)
  return {
    sql,
    principals,
    provisioning: new ProvisioningStore(sql, principals),
    close: () => sql.close(),
  }
}
