import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { TestContext } from 'node:test'
import BetterSqlite3 from 'better-sqlite3'
import { openSqlite, SqliteSql, type SqlDatabase } from '../../src/store/index.js'

export interface TempDb {
  sql: SqliteSql
  file: string
}

/** A migrated database in a temp dir, closed and removed after the test. */
export async function tempDb (t: TestContext): Promise<TempDb> {
  const dir = await mkdtemp(join(tmpdir(), 'metanode-cage-'))
  const file = join(dir, 'hub.db')
  const sql = openSqlite(file)
  t.after(async () => {
    await sql.close()
    await rm(dir, { recursive: true, force: true })
  })
  return { sql, file }
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
