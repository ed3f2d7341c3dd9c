import type { TestContext } from 'node:test'
import BetterSqlite3 from 'better-sqlite3'
import { SqliteSql, type SqlDatabase } from '../../src/store/index.js'
import { sqliteEngine } from '../helpers/sql-engines.js'

export interface TempDb {
  sql: SqliteSql
  file: string
}

/** A migrated SQLite file in a temp dir, closed and removed after the test. */
export async function tempDb (t: TestContext): Promise<TempDb> {
  const sql = await sqliteEngine.open(t)
  return { sql, file: sql.connection.name }
}

/**
 * Edits the audit log behind the hub's back, as someone with the database (not the hub)
 * would, past the append-only triggers: on SQLite through a second connection to the file
 * after dropping them, on PostgreSQL in a transaction with triggers off
 * (session_replication_role = replica, which the superuser may set).
 */
export async function tamper (db: SqlDatabase, sql: string, ...params: Array<string | number>): Promise<void> {
  if (db instanceof SqliteSql) {
    const other = new BetterSqlite3(db.connection.name)
    try {
      other.exec('DROP TRIGGER IF EXISTS audit_log_no_update; DROP TRIGGER IF EXISTS audit_log_no_delete')
      other.prepare(sql).run(...params)
    } finally {
      other.close()
    }
    return
  }
  await db.transaction(async () => {
    await db.run('SET LOCAL session_replication_role = replica')
    await db.run(sql, params)
  })
}
