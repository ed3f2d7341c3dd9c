/**
 * Opens the hub's database with the settings every component relies on, and brings its
 * schema up to date: the embedded SQLite file by default, a PostgreSQL server for a fleet
 * whose processes run on several hosts.
 */
import { mkdirSync } from 'node:fs'
import { dirname } from 'node:path'
import BetterSqlite3, { type Database } from 'better-sqlite3'
import { migrate } from './migrations.js'
import { migratePostgres } from './postgres-migrations.js'
import { PostgresSql, type PostgresOptions } from './postgres-sql.js'
import { SqliteSql } from './sqlite-sql.js'

export type { Database }

/** How long a statement waits for another process's write lock before SQLITE_BUSY, in ms. */
export const BUSY_TIMEOUT_MS = 5_000

export function openDatabase (file: string): Database {
  if (file !== ':memory:') mkdirSync(dirname(file), { recursive: true, mode: 0o700 })
  const db = new BetterSqlite3(file)
  try {
    // WAL lets readers run beside the one writer; FULL syncs the WAL on every commit, so a
    // committed enrolment or revocation survives a power cut, not only a process crash.
    db.pragma('journal_mode = WAL')
    db.pragma('synchronous = FULL')
    db.pragma('foreign_keys = ON')
    db.pragma(`busy_timeout = ${BUSY_TIMEOUT_MS}`)
    migrate(db)
    return db
  } catch (err) {
    db.close()
    throw err
  }
}

/** The SQLite file as a SqlDatabase. */
export function openSqlite (file: string): SqliteSql {
  return new SqliteSql(openDatabase(file))
}

/** A PostgreSQL database as a SqlDatabase, once its schema is up to date. */
export async function openPostgres (options: PostgresOptions): Promise<PostgresSql> {
  const db = new PostgresSql(options)
  try {
    await migratePostgres(db)
    return db
  } catch (err) {
    await db.close()
    throw err
  }
}
