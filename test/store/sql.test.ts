/**
 * The SqlDatabase contract, on both engines: what the repositories rely on.
 */
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { constraintViolated, databaseUnavailable } from '../../src/store/sql.js'
import { PostgresSql, numberPlaceholders } from '../../src/store/postgres-sql.js'
import { bumpChangeCounter, readChangeCounter } from '../../src/store/change-counters.js'
import { postgresEngine, sqlEngines, testPostgres } from '../helpers/sql-engines.js'

test('placeholders are numbered outside quotes only', () => {
  assert.equal(numberPlaceholders("SELECT ? AS a, '?' AS b, \"?\" AS c, ? AS d"), "SELECT $1 AS a, '?' AS b, \"?\" AS c, $2 AS d")
})

for (const engine of sqlEngines()) {
  describe(`SqlDatabase on ${engine.name}`, { skip: engine.skip }, () => {
    test('reads back integers as numbers, bytes as Buffers, text and null as they went in', async t => {
      const db = await engine.open(t)
      await db.run('CREATE TABLE t (id INTEGER PRIMARY KEY, ms BIGINT NOT NULL, b BYTEA, s TEXT)'.replace('BYTEA', db.dialect === 'sqlite' ? 'BLOB' : 'BYTEA'))
      const ms = 1_790_000_000_123
      await db.run('INSERT INTO t (id, ms, b, s) VALUES (?, ?, ?, ?)', [1, ms, Buffer.from([0, 1, 255]), null])
      const row = await db.get<{ id: number, ms: number, b: Buffer, s: string | null }>('SELECT id, ms, b, s FROM t WHERE id = ?', [1])
      assert.deepEqual(row, { id: 1, ms, b: Buffer.from([0, 1, 255]), s: null })
      assert.deepEqual(await db.get<{ n: number }>('SELECT count(*) AS n FROM t'), { n: 1 })
      assert.equal(await db.get('SELECT id FROM t WHERE id = ?', [2]), undefined)
      assert.deepEqual(await db.run('UPDATE t SET s = ? WHERE id > ?', ['x', 0]), { changes: 1 })
      assert.deepEqual(await db.all('SELECT s FROM t'), [{ s: 'x' }])
    })

    test('a transaction commits what its async context wrote, or nothing when it throws', async t => {
      const db = await engine.open(t)
      await db.run('CREATE TABLE t (k TEXT PRIMARY KEY, v INTEGER NOT NULL)')
      const insert = (k: string, v: number): Promise<unknown> => db.run('INSERT INTO t (k, v) VALUES (?, ?)', [k, v])
      await db.transaction(async () => {
        await insert('a', 1)
        // A nested transaction joins the outer one.
        await db.transaction(async () => { await insert('b', 2) })
      })
      await assert.rejects(db.transaction(async () => {
        await insert('c', 3)
        throw new Error('changed my mind')
      }), /changed my mind/)
      assert.deepEqual(await db.all('SELECT k FROM t ORDER BY k'), [{ k: 'a' }, { k: 'b' }])
    })

    test('statements outside an open transaction neither join it nor see its writes', async t => {
      const db = await engine.open(t)
      await db.run('CREATE TABLE t (k TEXT PRIMARY KEY)')
      let release!: () => void
      const held = new Promise<void>(resolve => { release = resolve })
      let inserted!: () => void
      const didInsert = new Promise<void>(resolve => { inserted = resolve })
      const tx = db.transaction(async () => {
        await db.run('INSERT INTO t (k) VALUES (?)', ['inside'])
        inserted()
        await held
        throw new Error('roll back')
      })
      await didInsert
      const outside = db.run('INSERT INTO t (k) VALUES (?)', ['outside'])
      const seen = db.all<{ k: string }>('SELECT k FROM t')
      release()
      await assert.rejects(tx, /roll back/)
      await outside
      assert.deepEqual((await seen).map(r => r.k).filter(k => k === 'inside'), [])
      assert.deepEqual(await db.all('SELECT k FROM t'), [{ k: 'outside' }])
    })

    test('a statement issued just before another context begins a transaction is not caught in it', async t => {
      const db = await engine.open(t)
      await db.run('CREATE TABLE t (k TEXT PRIMARY KEY)')
      const outside = db.run('INSERT INTO t (k) VALUES (?)', ['outside'])
      const tx = db.transaction(async () => {
        await db.run('INSERT INTO t (k) VALUES (?)', ['inside'])
        throw new Error('roll back')
      })
      await outside
      await assert.rejects(tx, /roll back/)
      assert.deepEqual(await db.all('SELECT k FROM t'), [{ k: 'outside' }])
    })

    test('lock() serialises read-then-write sequences of concurrent transactions', async t => {
      const db = await engine.open(t)
      await db.run('CREATE TABLE seq (n INTEGER PRIMARY KEY)')
      await Promise.all(Array.from({ length: 20 }, () => db.transaction(async () => {
        await db.lock('seq')
        const last = await db.get<{ n: number | null }>('SELECT max(n) AS n FROM seq')
        await db.run('INSERT INTO seq (n) VALUES (?)', [(last?.n ?? 0) + 1])
      })))
      assert.deepEqual(await db.get('SELECT count(*) AS n, max(n) AS top FROM seq'), { n: 20, top: 20 })
      await assert.rejects(db.lock('seq'), /inside a transaction/)
    })

    test('constraint violations are told apart on either engine', async t => {
      const db = await engine.open(t)
      await db.run('CREATE TABLE p (id TEXT PRIMARY KEY, n INTEGER NOT NULL CHECK (n >= 0))')
      await db.run('CREATE TABLE c (p TEXT NOT NULL REFERENCES p (id))')
      await db.run('INSERT INTO p (id, n) VALUES (?, ?)', ['a', 1])
      const kind = async (sql: string, params: Array<string | number | null>): Promise<unknown> => {
        try {
          await db.run(sql, params)
          return 'none'
        } catch (err) {
          return constraintViolated(err)
        }
      }
      assert.equal(await kind('INSERT INTO p (id, n) VALUES (?, ?)', ['a', 2]), 'unique')
      assert.equal(await kind('INSERT INTO p (id, n) VALUES (?, ?)', ['b', -1]), 'check')
      assert.equal(await kind('INSERT INTO p (id, n) VALUES (?, ?)', ['b', null]), 'not_null')
      assert.equal(await kind('INSERT INTO c (p) VALUES (?)', ['zz']), 'foreign_key')
      assert.equal(constraintViolated(new Error('other')), null)
    })

    test('change counters start at 0 and count each bump', async t => {
      const db = await engine.open(t)
      assert.equal(await readChangeCounter(db, 'policy'), 0)
      await bumpChangeCounter(db, 'policy')
      await db.transaction(() => bumpChangeCounter(db, 'policy'))
      assert.equal(await readChangeCounter(db, 'policy'), 2)
      assert.equal(await readChangeCounter(db, 'tree'), 0)
    })

    test('the schema is at the hub\'s version, and opening again changes nothing', async t => {
      const db = await engine.open(t)
      const tables = db.dialect === 'sqlite'
        ? await db.all<{ name: string }>("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite%' ORDER BY name")
        : await db.all<{ name: string }>("SELECT table_name AS name FROM information_schema.tables WHERE table_schema = 'public' AND table_name <> 'metanode_schema' ORDER BY table_name")
      assert.deepEqual(tables.map(r => r.name), [
        'audit_log', 'change_counters', 'device_states', 'policy_rules', 'principals', 'provisioning_tokens',
        'zk_balances', 'zk_claims', 'zk_frontier', 'zk_leaves', 'zk_roots',
      ])
    })

    test('the audit log refuses updates and deletes at the database', async t => {
      const db = await engine.open(t)
      await db.run("INSERT INTO audit_log (seq, ts_ms, actor, action, target, source, detail, prev_hash, hash) VALUES (1, 0, 'hub', 'x', NULL, NULL, '{}', ?, ?)", ['0'.repeat(64), '1'.repeat(64)])
      await assert.rejects(db.run("UPDATE audit_log SET actor = 'me'"), /append-only/)
      await assert.rejects(db.run('DELETE FROM audit_log'), /append-only/)
    })
  })
}

describe('an unreachable database', { skip: postgresEngine.skip }, () => {
  test('is told apart from a wrong statement, before and after the server goes away', async t => {
    const server = await testPostgres()
    const db = new PostgresSql({ url: await server.createDatabase() })
    t.after(() => db.close())
    const failure = async (sql: string): Promise<unknown> => db.run(sql).then(() => null, (err: unknown) => err)
    assert.equal(databaseUnavailable(await failure('SELEC 1')), false, 'a syntax error is the caller\'s')
    assert.equal(databaseUnavailable(await failure("SELECT pg_terminate_backend(pg_backend_pid())")), true, 'a connection cut mid-statement')
    const nowhere = new PostgresSql({ url: `postgres://postgres@127.0.0.1:${server.port}/no_such_database` })
    t.after(() => nowhere.close())
    assert.equal(databaseUnavailable(await nowhere.run('SELECT 1').then(() => null, (err: unknown) => err)), false, 'a missing database is a configuration error')
    const closedPort = new PostgresSql({ url: 'postgres://postgres@127.0.0.1:1/x' })
    t.after(() => closedPort.close())
    assert.equal(databaseUnavailable(await closedPort.run('SELECT 1').then(() => null, (err: unknown) => err)), true, 'nothing listening')
    assert.equal(databaseUnavailable({ code: 'SQLITE_BUSY' }), true)
    assert.equal(databaseUnavailable({ code: 'SQLITE_CONSTRAINT_UNIQUE' }), false)
    assert.equal(databaseUnavailable(null), false)
  })
})
