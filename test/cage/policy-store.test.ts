import assert from 'node:assert/strict'
import { test } from 'node:test'
import BetterSqlite3 from 'better-sqlite3'
import { AuditLog } from '../../src/cage/audit.js'
import { PolicyStore, type StoredRule } from '../../src/cage/policy-store.js'
import { DEFAULT_RULES, RULES_MAX, type RequestFacts } from '../../src/cage/policy.js'
import { PolicyValidationError } from '../../src/cage/errors.js'
import { migrate } from '../../src/store/index.js'
import { tempDb, type TempDb } from './helpers.js'

const ADMIN = { actor: 'admin', source: '127.0.0.1' }
const BLOCK_X = { id: 'block-x', match: { path: '/x' }, action: { type: 'block', reason: 'x is closed' } }

function facts (url: string): RequestFacts {
  return { method: 'GET', url, identity: { kind: 'anonymous' }, ip: '127.0.0.1', headers: {} }
}

async function open (t: Parameters<typeof tempDb>[0], seedDefaults = false): Promise<TempDb & { audit: AuditLog, store: PolicyStore }> {
  const temp = await tempDb(t)
  const audit = new AuditLog(temp.db)
  const store = new PolicyStore(temp.db, { audit, seedDefaults })
  t.after(() => store.close())
  return { ...temp, audit, store }
}

interface Snapshot {
  rules: StoredRule[]
  active: PolicyStore['active']
  head: ReturnType<AuditLog['head']>
}

/** Everything a refused change must leave as it was. */
function snapshot (env: { store: PolicyStore, audit: AuditLog }): Snapshot {
  return { rules: env.store.list(), active: env.store.active, head: env.audit.head() }
}

function assertUnchanged (env: { store: PolicyStore, audit: AuditLog }, before: Snapshot): void {
  const now = snapshot(env)
  assert.deepEqual(now.rules, before.rules)
  assert.deepEqual(now.head, before.head)
  assert.equal(now.active, before.active, 'the very same compiled set is active')
}

const ids = (rules: StoredRule[]) => rules.map(rule => `${rule.position}:${rule.id}`)

test('a fresh database gets the default rules once, recorded as policy.seed', async (t) => {
  const env = await open(t, true)
  assert.deepEqual(env.store.list().map(rule => rule.id), DEFAULT_RULES.map(rule => rule.id))
  const seed = env.audit.list({ limit: 10 })
  assert.equal(seed.length, 1)
  assert.equal(seed[0].action, 'policy.seed')
  assert.equal(seed[0].actor, 'hub')
  // An admin who empties the set keeps it empty across restarts.
  env.store.replaceAll([], ADMIN)
  const again = new PolicyStore(env.db, { audit: env.audit })
  assert.deepEqual(again.list(), [])
  assert.equal(env.audit.list({ limit: 10, action: 'policy.seed' }).length, 1)
})

test('replaceAll swaps the whole set at once, keeps creation times of kept ids, and is audited', async (t) => {
  const env = await open(t)
  const first = env.store.replaceAll([BLOCK_X, { match: {}, action: { type: 'allow' } }], ADMIN)
  assert.equal(first.length, 2)
  assert.match(first[1].id, /^rule-[0-9a-f-]{36}$/)
  assert.equal(env.store.evaluate(facts('/x'), 0).type, 'block')
  const second = env.store.replaceAll([{ id: 'allow-y', match: { path: '/y' }, action: { type: 'allow' } }, BLOCK_X], ADMIN)
  assert.deepEqual(ids(second), ['1:allow-y', '2:block-x'])
  assert.equal(second[1].created, first[0].created)
  const entry = env.audit.list({ limit: 10, action: 'policy.replace', order: 'desc' })[0]
  assert.equal(entry.actor, 'admin')
  assert.equal(entry.source, '127.0.0.1')
  assert.deepEqual(entry.detail.removed, [first[1].id])
  assert.deepEqual((entry.detail.rules as Array<{ id: string }>).map(rule => rule.id), ['allow-y', 'block-x'])
})

test('a bad rule set is refused whole: table, active set and audit log untouched', async (t) => {
  const env = await open(t)
  env.store.replaceAll([BLOCK_X], ADMIN)
  const before = snapshot(env)
  const bad = [{ id: 'ok', match: {}, action: { type: 'allow' } }, { match: { cidrs: ['10.0.0.1/8'] }, action: { type: 'allow' } }]
  assert.throws(() => env.store.replaceAll(bad, ADMIN, 'body.rules'), (err: unknown) => {
    assert.ok(err instanceof PolicyValidationError)
    assert.equal(err.field, 'body.rules.1.match.cidrs.0')
    return true
  })
  assertUnchanged(env, before)
  assert.throws(() => env.store.replaceAll(Array(RULES_MAX + 1).fill({ match: {}, action: { type: 'allow' } }), ADMIN), /at most 256 rules/)
  assert.throws(() => env.store.replaceAll([BLOCK_X, BLOCK_X], ADMIN), /repeats the id "block-x"/)
  // Valid rules whose total is too large: refused inside the transaction, rolled back.
  const big = Array.from({ length: 200 }, (_, i) => ({ id: `r${i}`, match: { principals: Array.from({ length: 60 }, (_, j) => (i * 100 + j).toString(16).padStart(32, '0')) }, action: { type: 'allow' } }))
  assert.throws(() => env.store.replaceAll(big, ADMIN), /would make the rule set \d+ bytes of JSON; at most 262144/)
  assertUnchanged(env, before)
  assert.equal(env.audit.verify().ok, true)
})

test('a change whose audit entry cannot be written is not applied', async (t) => {
  const env = await open(t)
  env.store.replaceAll([BLOCK_X], ADMIN)
  const before = snapshot(env)
  assert.throws(() => env.store.replaceAll([], { actor: '' }), /actor must be/)
  assert.throws(() => env.store.delete('block-x', { actor: 'bad\nactor' }), /actor must be/)
  assertUnchanged(env, before)
  assert.equal(env.store.evaluate(facts('/x'), 0).type, 'block')
})

test('create inserts at a position (default last) and renumbers; 409 for a taken id; 400 for a bad position', async (t) => {
  const env = await open(t)
  env.store.replaceAll([{ id: 'a', match: { path: '/a' }, action: { type: 'allow' } }, { id: 'b', match: { path: '/b' }, action: { type: 'allow' } }], ADMIN)
  env.store.create({ id: 'c', match: { path: '/c' }, action: { type: 'allow' } }, undefined, ADMIN)
  assert.deepEqual(ids(env.store.list()), ['1:a', '2:b', '3:c'])
  const first = env.store.create({ id: 'first', match: {}, action: { type: 'block', reason: 'all closed' } }, 1, ADMIN)
  assert.equal(first.position, 1)
  assert.deepEqual(ids(env.store.list()), ['1:first', '2:a', '3:b', '4:c'])
  assert.equal(env.store.evaluate(facts('/a'), 0).type, 'block', 'in force at once')
  env.store.create({ id: 'mid', match: {}, action: { type: 'allow' } }, 3, ADMIN)
  assert.deepEqual(ids(env.store.list()), ['1:first', '2:a', '3:mid', '4:b', '5:c'])
  const before = snapshot(env)
  assert.throws(() => env.store.create({ id: 'a', match: {}, action: { type: 'allow' } }, undefined, ADMIN), (err: unknown) => (err as { statusCode: number }).statusCode === 409)
  assert.throws(() => env.store.create({ match: {}, action: { type: 'allow' } }, 7, ADMIN, 'body'), /body\.position must be an integer from 1 to 6, got 7/)
  assert.throws(() => env.store.create({ match: {}, action: { type: 'allow' } }, 0, ADMIN, 'body'), /body\.position/)
  assert.throws(() => env.store.create({ match: { roles: ['root'] }, action: { type: 'allow' } }, undefined, ADMIN, 'body'), /body\.match\.roles\.0/)
  assertUnchanged(env, before)
  const entry = env.audit.list({ limit: 1, order: 'desc', action: 'policy.create' })[0]
  assert.equal(entry.target, 'mid')
  assert.equal(entry.detail.position, 3)
})

test('update replaces match, action or description and moves a rule; 404 for an unknown id', async (t) => {
  const env = await open(t)
  env.store.replaceAll(['a', 'b', 'c', 'd'].map(id => ({ id, description: `rule ${id}`, match: { path: `/${id}` }, action: { type: 'allow' } })), ADMIN)
  const changed = env.store.update('b', { action: { type: 'block', reason: 'b is closed' } }, ADMIN)
  assert.deepEqual(changed.action, { type: 'block', reason: 'b is closed' })
  assert.deepEqual(changed.match, { path: '/b' })
  assert.equal(changed.description, 'rule b')
  assert.ok(changed.updated >= changed.created)
  assert.equal(env.store.evaluate(facts('/b'), 0).type, 'block')
  const moved = env.store.update('d', { position: 1, description: null }, ADMIN)
  assert.equal(moved.description, null)
  assert.deepEqual(ids(env.store.list()), ['1:d', '2:a', '3:b', '4:c'])
  env.store.update('d', { position: 4 }, ADMIN)
  assert.deepEqual(ids(env.store.list()), ['1:a', '2:b', '3:c', '4:d'])
  const entry = env.audit.list({ limit: 1, order: 'desc' })[0]
  assert.equal(entry.action, 'policy.update')
  assert.deepEqual(entry.detail.position, { from: 1, to: 4 })

  const before = snapshot(env)
  assert.throws(() => env.store.update('zz', { position: 1 }, ADMIN), (err: unknown) => (err as { statusCode: number }).statusCode === 404)
  assert.throws(() => env.store.update('a', {}, ADMIN, 'body'), /body must change at least one of description, match, action, position/)
  assert.throws(() => env.store.update('a', { id: 'x' }, ADMIN, 'body'), /body has an unknown property "id"/)
  assert.throws(() => env.store.update('a', { match: null }, ADMIN, 'body'), /body\.match must be an object, got null/)
  assert.throws(() => env.store.update('a', { action: { type: 'redirect' } }, ADMIN, 'body'), /body\.action\.location is required/)
  assert.throws(() => env.store.update('a', { position: 5 }, ADMIN, 'body'), /body\.position must be an integer from 1 to 4/)
  assertUnchanged(env, before)
})

test('delete removes and renumbers; 404 for an unknown id', async (t) => {
  const env = await open(t)
  env.store.replaceAll(['a', 'b', 'c'].map(id => ({ id, match: { path: `/${id}` }, action: { type: 'block', reason: id } })), ADMIN)
  const removed = env.store.delete('b', ADMIN)
  assert.equal(removed.id, 'b')
  assert.deepEqual(ids(env.store.list()), ['1:a', '2:c'])
  assert.equal(env.store.evaluate(facts('/b'), 0).type, 'allow')
  assert.throws(() => env.store.delete('b', ADMIN), /no policy rule with id "b"/)
  assert.equal(env.audit.list({ limit: 1, order: 'desc' })[0].action, 'policy.delete')
  assert.equal(env.audit.verify().ok, true)
})

test('changes refuse to run inside another transaction, whose rollback would desync the active set', async (t) => {
  const env = await open(t)
  assert.throws(() => env.db.transaction(() => env.store.replaceAll([], ADMIN))(), /must not run inside another transaction/)
})

test('refresh picks up rules another process changed; a store on a corrupt rule refuses to start', async (t) => {
  const env = await open(t)
  env.store.replaceAll([BLOCK_X], ADMIN)
  assert.equal(env.store.refresh(), false)
  const other = new BetterSqlite3(env.file)
  t.after(() => other.close())
  migrate(other)
  const otherStore = new PolicyStore(other, { audit: new AuditLog(other), seedDefaults: false })
  otherStore.replaceAll([], ADMIN)
  assert.equal(env.store.evaluate(facts('/x'), 0).type, 'block', 'not yet')
  assert.equal(env.store.refresh(), true)
  assert.equal(env.store.evaluate(facts('/x'), 0).type, 'allow')
  assert.equal(env.store.refresh(), false)
  assert.equal(env.audit.verify().ok, true, 'both processes extended one chain')

  other.prepare("INSERT INTO policy_rules (id, position, rule, created_ms, updated_ms) VALUES ('evil', 1, '{\"match\":{\"cidrs\":[\"nope\"]},\"action\":{\"type\":\"allow\"}}', 0, 0)").run()
  assert.throws(() => env.store.refresh(), /policy_rules\[evil\]\.match\.cidrs\.0 "nope"/)
  assert.equal(env.store.evaluate(facts('/x'), 0).type, 'allow', 'the active set stays')
  assert.throws(() => new PolicyStore(env.db, { audit: env.audit }), /policy_rules\[evil\]/)
})
