import assert from 'node:assert/strict'
import { join } from 'node:path'
import { describe, test } from 'node:test'
import BetterSqlite3 from 'better-sqlite3'
import { StoreSchemaError } from '../../src/errors.js'
import { openDatabase, BUSY_TIMEOUT_MS } from '../../src/store/database.js'
import { migrate, userVersion, SCHEMA_VERSION, type Migration } from '../../src/store/migrations.js'
import { openStore, type StoreOptions } from '../../src/store/index.js'
import { sqlEngines } from '../helpers/sql-engines.js'
import { hex, newPublicKey, tempDir } from './helpers.js'

test('openDatabase sets WAL, synchronous FULL, foreign keys and a busy timeout', async (t) => {
  const db = openDatabase(join(await tempDir(t), 'hub.db'))
  t.after(() => db.close())
  assert.equal(db.pragma('journal_mode', { simple: true }), 'wal')
  assert.equal(db.pragma('synchronous', { simple: true }), 2) // FULL
  assert.equal(db.pragma('foreign_keys', { simple: true }), 1)
  assert.equal(db.pragma('busy_timeout', { simple: true }), BUSY_TIMEOUT_MS)
  assert.equal(userVersion(db), SCHEMA_VERSION)
})

test('openDatabase creates a missing parent directory', async (t) => {
  const db = openDatabase(join(await tempDir(t), 'a', 'b', 'hub.db'))
  t.after(() => db.close())
  assert.equal(userVersion(db), SCHEMA_VERSION)
})

test('migrations are idempotent across reopen', async (t) => {
  const file = join(await tempDir(t), 'hub.db')
  openDatabase(file).close()
  const db = openDatabase(file)
  t.after(() => db.close())
  assert.equal(userVersion(db), SCHEMA_VERSION)
  assert.deepEqual(migrate(db), { from: SCHEMA_VERSION, to: SCHEMA_VERSION })
  const tables = db.prepare("SELECT name FROM sqlite_schema WHERE type = 'table' ORDER BY name").pluck().all()
  assert.deepEqual(tables, ['audit_log', 'change_counters', 'device_states', 'policy_rules', 'principals', 'provisioning_tokens', 'zk_balances', 'zk_claims', 'zk_frontier', 'zk_leaves', 'zk_roots'])
})

test('a failing migration rolls back whole and leaves the version', async (t) => {
  const db = new BetterSqlite3(join(await tempDir(t), 'm.db'))
  t.after(() => db.close())
  const migrations: Migration[] = [
    { version: 1, sql: 'CREATE TABLE a (x INTEGER);' },
    { version: 2, sql: 'CREATE TABLE b (x INTEGER); INSERT INTO nowhere VALUES (1);' },
  ]
  assert.throws(() => migrate(db, migrations), (err: unknown) => {
    assert.ok(err instanceof StoreSchemaError)
    assert.equal(err.code, 'MN_ERR_STORE_SCHEMA')
    assert.match(err.message, /migration 2 failed/)
    return true
  })
  assert.equal(userVersion(db), 1)
  const tables = db.prepare("SELECT name FROM sqlite_schema WHERE type = 'table'").pluck().all()
  assert.deepEqual(tables, ['a'])
  // Fixed, the next open applies only what is missing.
  migrations[1] = { version: 2, sql: 'CREATE TABLE b (x INTEGER);' }
  assert.deepEqual(migrate(db, migrations), { from: 1, to: 2 })
})

test('a database from a newer hub is refused', async (t) => {
  const file = join(await tempDir(t), 'hub.db')
  const raw = new BetterSqlite3(file)
  raw.pragma(`user_version = ${SCHEMA_VERSION + 1}`)
  raw.close()
  assert.throws(() => openDatabase(file), StoreSchemaError)
})

for (const engine of sqlEngines()) {
  describe(`the store on ${engine.name}`, { skip: engine.skip }, () => {
    test('data survives closing and reopening the store', async (t) => {
      const { databaseUrl, dataDir } = await engine.fresh(t)
      const options: StoreOptions = databaseUrl === undefined ? { file: join(dataDir, 'hub.db') } : { url: databaseUrl }
      const key = await newPublicKey()
      const first = await openStore(options)
      assert.equal(first.sql.dialect, engine.name)
      const created = await first.principals.create({ publicKey: key, role: 'device', name: 'kiln' })
      await first.principals.revoke(created.id, created.created + 5)
      await first.close()
      await first.close() // idempotent

      const second = await openStore(options)
      t.after(() => second.close())
      assert.deepEqual(await second.principals.get(created.id), { ...created, revoked: created.created + 5 })
      assert.deepEqual(await second.principals.getPublicKey(created.id), key)
      assert.equal(await second.principals.count(), 1)
      assert.equal(hex(key), created.publicKey)
    })
  })
}
