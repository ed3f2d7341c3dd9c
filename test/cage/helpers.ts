import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { TestContext } from 'node:test'
import BetterSqlite3 from 'better-sqlite3'
import { openDatabase, type Database } from '../../src/store/index.js'

export interface TempDb {
  db: Database
  file: string
}

/** A migrated database in a temp dir, closed and removed after the test. */
export async function tempDb (t: TestContext): Promise<TempDb> {
  const dir = await mkdtemp(join(tmpdir(), 'metanode-cage-'))
  const file = join(dir, 'hub.db')
  const db = openDatabase(file)
  t.after(async () => {
    db.close()
    await rm(dir, { recursive: true, force: true })
  })
  return { db, file }
}

/**
 * Runs SQL on the file through a second connection, as someone with the file (not the hub)
 * would: the append-only triggers are dropped first, because they stop edits through any
 * connection. The hub's own connection is left as it was.
 */
export function tamper (file: string, sql: string, ...params: unknown[]): void {
  const other = new BetterSqlite3(file)
  try {
    other.exec('DROP TRIGGER IF EXISTS audit_log_no_update; DROP TRIGGER IF EXISTS audit_log_no_delete')
    other.prepare(sql).run(...params)
  } finally {
    other.close()
  }
}
