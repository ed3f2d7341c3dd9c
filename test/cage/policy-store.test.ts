import assert from 'node:assert/strict'
import { describe, test, type TestContext } from 'node:test'
import { AuditLog, type AuditHead } from '../../src/cage/audit.js'
import { PolicyStore, type PolicyStoreOptions, type StoredRule } from '../../src/cage/policy-store.js'
import { DEFAULT_RULES, RULES_MAX, type RequestFacts } from '../../src/cage/policy.js'
import { PolicyValidationError } from '../../src/cage/errors.js'
import { bumpChangeCounter, readChangeCounter, type SqlDatabase } from '../../src/store/index.js'
import { sharedDatabase, sqlEngines, type SqlEngine } from '../helpers/sql-engines.js'

const ADMIN = { actor: 'admin', source: '127.0.0.1' }
const BLOCK_X = { id: 'block-x', match: { path: '/x' }, action: { type: 'block', reason: 'x is closed' } }
/** Writes, by hand past the store, a rule that does not validate. */
function insertEvil (db: SqlDatabase, position: number): Promise<unknown> {
  const rule = JSON.stringify({ match: { cidrs: ['nope'] }, action: { type: 'allow' } })
  return db.run("INSERT INTO policy_rules (id, position, rule, created_ms, updated_ms) VALUES ('evil', ?, ?, 0, 0)", [position, rule])
}

function facts (url: string): RequestFacts {
  return { method: 'GET', url, identity: { kind: 'anonymous' }, ip: '127.0.0.1', headers: {} }
}

interface Env {
  db: SqlDatabase
  audit: AuditLog
  store: PolicyStore
  /** Another connection to the same database, as a second hub process has. */
  connect (): Promise<SqlDatabase>
}

/** A fresh database on `engine`, and a store over it that does not seed unless asked. */
async function open (engine: SqlEngine, t: TestContext, options: Partial<PolicyStoreOptions> = {}): Promise<Env> {
  const { connect } = await sharedDatabase(engine, t)
  const db = await connect()
  const audit = new AuditLog(db)
  const store = await openStore(t, db, { audit, seedDefaults: false, ...options })
  return { db, audit, store, connect }
}

async function openStore (t: TestContext, db: SqlDatabase, options: PolicyStoreOptions): Promise<PolicyStore> {
  const store = await PolicyStore.open(db, options)
  t.after(() => store.close())
  return store
}

interface Snapshot {
  rules: StoredRule[]
  active: PolicyStore['active']
  head: AuditHead | null
}

/** Everything a refused change must leave as it was. */
async function snapshot (env: { store: PolicyStore, audit: AuditLog }): Promise<Snapshot> {
  return { rules: await env.store.list(), active: env.store.active, head: await env.audit.head() }
}

async function assertUnchanged (env: { store: PolicyStore, audit: AuditLog }, before: Snapshot): Promise<void> {
  const now = await snapshot(env)
  assert.deepEqual(now.rules, before.rules)
  assert.deepEqual(now.head, before.head)
  assert.equal(now.active, before.active, 'the very same compiled set is active')
}

const ids = (rules: StoredRule[]) => rules.map(rule => `${rule.position}:${rule.id}`)

/** Resolves once `check` holds, looking again every few ms; the test's timeout bounds the wait. */
async function eventually (check: () => boolean): Promise<void> {
  while (!check()) await new Promise(resolve => setTimeout(resolve, 5))
}

for (const engine of sqlEngines()) {
  describe(`policy rules on ${engine.name}`, { skip: engine.skip }, () => {
    test('a fresh database gets the default rules once, recorded as policy.seed', async (t) => {
      const env = await open(engine, t, { seedDefaults: true })
      assert.deepEqual((await env.store.list()).map(rule => rule.id), DEFAULT_RULES.map(rule => rule.id))
      const seed = await env.audit.list({ limit: 10 })
      assert.equal(seed.length, 1)
      assert.equal(seed[0].action, 'policy.seed')
      assert.equal(seed[0].actor, 'hub')
      // An admin who empties the set keeps it empty across restarts.
      await env.store.replaceAll([], ADMIN)
      const again = await openStore(t, env.db, { audit: env.audit })
      assert.deepEqual(await again.list(), [])
      assert.equal((await env.audit.list({ limit: 10, action: 'policy.seed' })).length, 1)
    })

    test('replaceAll swaps the whole set at once, keeps creation times of kept ids, and is audited', async (t) => {
      const env = await open(engine, t)
      const first = await env.store.replaceAll([BLOCK_X, { match: {}, action: { type: 'allow' } }], ADMIN)
      assert.equal(first.length, 2)
      assert.match(first[1].id, /^rule-[0-9a-f-]{36}$/)
      assert.equal(env.store.evaluate(facts('/x'), 0).type, 'block')
      const second = await env.store.replaceAll([{ id: 'allow-y', match: { path: '/y' }, action: { type: 'allow' } }, BLOCK_X], ADMIN)
      assert.deepEqual(ids(second), ['1:allow-y', '2:block-x'])
      assert.equal(second[1].created, first[0].created)
      const [entry] = await env.audit.list({ limit: 10, action: 'policy.replace', order: 'desc' })
      assert.equal(entry.actor, 'admin')
      assert.equal(entry.source, '127.0.0.1')
      assert.deepEqual(entry.detail.removed, [first[1].id])
      assert.deepEqual((entry.detail.rules as Array<{ id: string }>).map(rule => rule.id), ['allow-y', 'block-x'])
    })

    test('a bad rule set is refused whole: table, active set and audit log untouched', async (t) => {
      const env = await open(engine, t)
      await env.store.replaceAll([BLOCK_X], ADMIN)
      const before = await snapshot(env)
      const bad = [{ id: 'ok', match: {}, action: { type: 'allow' } }, { match: { cidrs: ['10.0.0.1/8'] }, action: { type: 'allow' } }]
      await assert.rejects(env.store.replaceAll(bad, ADMIN, 'body.rules'), (err: unknown) => {
        assert.ok(err instanceof PolicyValidationError)
        assert.equal(err.field, 'body.rules.1.match.cidrs.0')
        return true
      })
      await assertUnchanged(env, before)
      await assert.rejects(env.store.replaceAll(Array(RULES_MAX + 1).fill({ match: {}, action: { type: 'allow' } }), ADMIN), /at most 256 rules/)
      await assert.rejects(env.store.replaceAll([BLOCK_X, BLOCK_X], ADMIN), /repeats the id "block-x"/)
      // Valid rules whose total is too large: refused inside the transaction, rolled back.
      const big = Array.from({ length: 200 }, (_, i) => ({ id: `r${i}`, match: { principals: Array.from({ length: 60 }, (_, j) => (i * 100 + j).toString(16).padStart(32, '0')) }, action: { type: 'allow' } }))
      await assert.rejects(env.store.replaceAll(big, ADMIN), /would make the rule set \d+ bytes of JSON; at most 262144/)
      await assertUnchanged(env, before)
      assert.equal((await env.audit.verify()).ok, true)
    })

    test('a change whose audit entry cannot be written is not applied', async (t) => {
      const env = await open(engine, t)
      await env.store.replaceAll([BLOCK_X], ADMIN)
      const before = await snapshot(env)
      const version = await readChangeCounter(env.db, 'policy_rules')
      await assert.rejects(env.store.replaceAll([], { actor: '' }), /actor must be/)
      await assert.rejects(env.store.delete('block-x', { actor: 'bad\nactor' }), /actor must be/)
      await assertUnchanged(env, before)
      assert.equal(await readChangeCounter(env.db, 'policy_rules'), version, 'the counter rolled back with the change')
      assert.equal(env.store.evaluate(facts('/x'), 0).type, 'block')
    })

    test('create inserts at a position (default last) and renumbers; 409 for a taken id; 400 for a bad position', async (t) => {
      const env = await open(engine, t)
      await env.store.replaceAll([{ id: 'a', match: { path: '/a' }, action: { type: 'allow' } }, { id: 'b', match: { path: '/b' }, action: { type: 'allow' } }], ADMIN)
      await env.store.create({ id: 'c', match: { path: '/c' }, action: { type: 'allow' } }, undefined, ADMIN)
      assert.deepEqual(ids(await env.store.list()), ['1:a', '2:b', '3:c'])
      const first = await env.store.create({ id: 'first', match: {}, action: { type: 'block', reason: 'all closed' } }, 1, ADMIN)
      assert.equal(first.position, 1)
      assert.deepEqual(ids(await env.store.list()), ['1:first', '2:a', '3:b', '4:c'])
      assert.equal(env.store.evaluate(facts('/a'), 0).type, 'block', 'in force at once')
      await env.store.create({ id: 'mid', match: {}, action: { type: 'allow' } }, 3, ADMIN)
      assert.deepEqual(ids(await env.store.list()), ['1:first', '2:a', '3:mid', '4:b', '5:c'])
      const before = await snapshot(env)
      await assert.rejects(env.store.create({ id: 'a', match: {}, action: { type: 'allow' } }, undefined, ADMIN), (err: unknown) => (err as { statusCode: number }).statusCode === 409)
      await assert.rejects(env.store.create({ match: {}, action: { type: 'allow' } }, 7, ADMIN, 'body'), /body\.position must be an integer from 1 to 6, got 7/)
      await assert.rejects(env.store.create({ match: {}, action: { type: 'allow' } }, 0, ADMIN, 'body'), /body\.position/)
      await assert.rejects(env.store.create({ match: { roles: ['root'] }, action: { type: 'allow' } }, undefined, ADMIN, 'body'), /body\.match\.roles\.0/)
      await assertUnchanged(env, before)
      const [entry] = await env.audit.list({ limit: 1, order: 'desc', action: 'policy.create' })
      assert.equal(entry.target, 'mid')
      assert.equal(entry.detail.position, 3)
    })

    test('update replaces match, action or description and moves a rule; 404 for an unknown id', async (t) => {
      const env = await open(engine, t)
      await env.store.replaceAll(['a', 'b', 'c', 'd'].map(id => ({ id, description: `rule ${id}`, match: { path: `/${id}` }, action: { type: 'allow' } })), ADMIN)
      const changed = await env.store.update('b', { action: { type: 'block', reason: 'b is closed' } }, ADMIN)
      assert.deepEqual(changed.action, { type: 'block', reason: 'b is closed' })
      assert.deepEqual(changed.match, { path: '/b' })
      assert.equal(changed.description, 'rule b')
      assert.ok(changed.updated >= changed.created)
      assert.equal(env.store.evaluate(facts('/b'), 0).type, 'block')
      const moved = await env.store.update('d', { position: 1, description: null }, ADMIN)
      assert.equal(moved.description, null)
      assert.deepEqual(ids(await env.store.list()), ['1:d', '2:a', '3:b', '4:c'])
      await env.store.update('d', { position: 4 }, ADMIN)
      assert.deepEqual(ids(await env.store.list()), ['1:a', '2:b', '3:c', '4:d'])
      const [entry] = await env.audit.list({ limit: 1, order: 'desc' })
      assert.equal(entry.action, 'policy.update')
      assert.deepEqual(entry.detail.position, { from: 1, to: 4 })

      const before = await snapshot(env)
      await assert.rejects(env.store.update('zz', { position: 1 }, ADMIN), (err: unknown) => (err as { statusCode: number }).statusCode === 404)
      await assert.rejects(env.store.update('a', {}, ADMIN, 'body'), /body must change at least one of description, match, action, position/)
      await assert.rejects(env.store.update('a', { id: 'x' }, ADMIN, 'body'), /body has an unknown property "id"/)
      await assert.rejects(env.store.update('a', { match: null }, ADMIN, 'body'), /body\.match must be an object, got null/)
      await assert.rejects(env.store.update('a', { action: { type: 'redirect' } }, ADMIN, 'body'), /body\.action\.location is required/)
      await assert.rejects(env.store.update('a', { position: 5 }, ADMIN, 'body'), /body\.position must be an integer from 1 to 4/)
      await assertUnchanged(env, before)
    })

    test('delete removes and renumbers; 404 for an unknown id', async (t) => {
      const env = await open(engine, t)
      await env.store.replaceAll(['a', 'b', 'c'].map(id => ({ id, match: { path: `/${id}` }, action: { type: 'block', reason: id } })), ADMIN)
      const removed = await env.store.delete('b', ADMIN)
      assert.equal(removed.id, 'b')
      assert.deepEqual(ids(await env.store.list()), ['1:a', '2:c'])
      assert.equal(env.store.evaluate(facts('/b'), 0).type, 'allow')
      assert.equal(await env.store.get('b'), undefined)
      await assert.rejects(env.store.delete('b', ADMIN), /no policy rule with id "b"/)
      assert.equal((await env.audit.list({ limit: 1, order: 'desc' }))[0].action, 'policy.delete')
      assert.equal((await env.audit.verify()).ok, true)
    })

    test('refresh picks up rules another process changed; a store on a corrupt rule refuses to start', async (t) => {
      const env = await open(engine, t)
      await env.store.replaceAll([BLOCK_X], ADMIN)
      assert.equal(await env.store.refresh(), false)
      const other = await env.connect()
      const otherStore = await openStore(t, other, { audit: new AuditLog(other), seedDefaults: false })
      await otherStore.replaceAll([], ADMIN)
      assert.equal(env.store.evaluate(facts('/x'), 0).type, 'block', 'not yet')
      assert.equal(await env.store.refresh(), true)
      assert.equal(env.store.evaluate(facts('/x'), 0).type, 'allow')
      assert.equal(await env.store.refresh(), false)
      assert.equal((await env.audit.verify()).ok, true, 'both processes extended one chain')

      // A row written by hand, past the store: running processes learn of it only when the
      // change counter moves, and a process starting now refuses it at once.
      await insertEvil(other, 1)
      assert.equal(await env.store.refresh(), false)
      await assert.rejects(PolicyStore.open(env.db, { audit: env.audit }), /policy_rules\[evil\]\.match\.cidrs\.0 "nope"/)
      await bumpChangeCounter(other, 'policy_rules')
      await assert.rejects(env.store.refresh(), /policy_rules\[evil\]\.match\.cidrs\.0 "nope"/)
      assert.equal(env.store.evaluate(facts('/x'), 0).type, 'allow', 'the active set stays')
      assert.equal(await env.store.refresh(), false, 'reported once, not on every refresh')
    })

    test('the refresh timer brings in other processes\' changes and reports a corrupt rule', async (t) => {
      const errors: unknown[] = []
      const env = await open(engine, t, { refreshIntervalMs: 10, onRefreshError: err => errors.push(err) })
      const other = await env.connect()
      const otherStore = await openStore(t, other, { audit: new AuditLog(other), seedDefaults: false })
      await otherStore.create(BLOCK_X, undefined, ADMIN)
      await eventually(() => env.store.evaluate(facts('/x'), 0).type === 'block')
      await other.transaction(async () => {
        await insertEvil(other, 2)
        await bumpChangeCounter(other, 'policy_rules')
      })
      await eventually(() => errors.length > 0)
      assert.match(String(errors[0]), /policy_rules\[evil\]/)
      assert.equal(env.store.evaluate(facts('/x'), 0).type, 'block', 'the active set stays')
      await env.store.close()
      await env.store.close()
    })
  })
}

// Two SQLite connections in one process cannot race: one waiting for the file's write lock
// blocks the thread (busy_timeout) that the other needs to finish its transaction. Hub
// processes sharing a SQLite file are separate processes; on PostgreSQL they may be anywhere.
const postgres = sqlEngines().find(engine => engine.name === 'postgres')!
describe('policy rules of a fleet on one PostgreSQL database', { skip: postgres.skip }, () => {
  test('processes starting together on a fresh database seed it once', async (t) => {
    const env = await open(postgres, t)
    const connections = [env.db, await env.connect(), await env.connect()]
    const stores = await Promise.all(connections.map(db => openStore(t, db, { audit: new AuditLog(db) })))
    for (const store of stores) assert.deepEqual(store.active.rules.map(rule => rule.id), DEFAULT_RULES.map(rule => rule.id))
    assert.equal((await env.audit.list({ limit: 10, action: 'policy.*' })).length, 1)
    assert.deepEqual(ids(await env.store.list()), DEFAULT_RULES.map((rule, i) => `${i + 1}:${rule.id}`))
  })

  test('two processes changing the rules at once keep positions whole, and both end on the same set', async (t) => {
    const env = await open(postgres, t)
    const other = await env.connect()
    const otherStore = await openStore(t, other, { audit: new AuditLog(other), seedDefaults: false })
    const stores = [env.store, otherStore]
    await Promise.all(stores.flatMap((store, p) => Array.from({ length: 8 }, (_, i) =>
      store.create({ id: `p${p}-${i}`, match: { path: `/${p}/${i}` }, action: { type: 'allow' } }, 1, ADMIN))))
    const rules = await env.store.list()
    assert.equal(rules.length, 16)
    assert.deepEqual(rules.map(rule => rule.position), Array.from({ length: 16 }, (_, i) => i + 1))
    for (const store of stores) await store.refresh()
    assert.deepEqual(env.store.active.rules.map(rule => rule.id), rules.map(rule => rule.id))
    assert.deepEqual(otherStore.active.rules.map(rule => rule.id), rules.map(rule => rule.id))
    assert.equal(await readChangeCounter(env.db, 'policy_rules'), 16)
    const verdict = await env.audit.verify()
    assert.equal(verdict.ok && verdict.entries, 16)
  })
})
