/**
 * Opens the hub's one SQLite file with the settings every component relies on, and brings
 * its schema up to date.
 */
import { mkdirSync } from 'node:fs'
import { dirname } from 'node:path'
import BetterSqlite3, { type Database } from 'better-sqlite3'
import { migrate } from './migrations.js'

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
