/**
 * What the ZK repositories' tests need of the rest of the database, written as plain SQL so
 * that they run on both engines whatever the principals' repository looks like: device
 * principals to own leaves, and second connections to one database, as a second hub
 * process sharing it would have.
 */
import type { TestContext } from 'node:test'
import { join } from 'node:path'
import { openPostgres, openSqlite } from '../../src/store/database.js'
import { principalIdFromPublicKey } from '../../src/store/public-key.js'
import type { SqlDatabase } from '../../src/store/sql.js'
import type { SqlEngine } from '../helpers/sql-engines.js'
import { newPublicKey } from '../store/helpers.js'

/** A new principal (a device unless told otherwise); its id. */
export async function addPrincipal (db: SqlDatabase, role: 'device' | 'service' = 'device'): Promise<string> {
  const publicKey = await newPublicKey()
  const id = principalIdFromPublicKey(publicKey)
  await db.run('INSERT INTO principals (id, public_key, role, name, created_ms, revoked_ms) VALUES (?, ?, ?, NULL, ?, NULL)', [id, Buffer.from(publicKey), role, Date.now()])
  return id
}

export async function revokePrincipal (db: SqlDatabase, id: string, nowMs = Date.now()): Promise<void> {
  await db.run('UPDATE principals SET revoked_ms = ? WHERE id = ?', [nowMs, id])
}

/**
 * A fresh database of `engine`, and a way to open connections to it: each call opens one
 * more (closed when `t` ends), as each process of a fleet holds its own.
 */
export async function sharedDatabase (engine: SqlEngine, t: Pick<TestContext, 'after'>): Promise<() => Promise<SqlDatabase>> {
  const { databaseUrl, dataDir } = await engine.fresh(t)
  return async () => {
    const db = databaseUrl !== undefined ? await openPostgres({ url: databaseUrl }) : openSqlite(join(dataDir, 'metanode.db'))
    t.after(() => db.close())
    return db
  }
}
