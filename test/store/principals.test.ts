import assert from 'node:assert/strict'
import { join } from 'node:path'
import { test, type TestContext } from 'node:test'
import { BadRequestError, ConflictError, NotFoundError } from '../../src/errors.js'
import { openStore, principalIdFromPublicKey, type Store } from '../../src/store/index.js'
import { hex, newPublicKey, tempDir } from './helpers.js'

async function store (t: TestContext): Promise<Store> {
  const opened = openStore({ file: join(await tempDir(t), 'hub.db') })
  t.after(() => opened.close())
  return opened
}

test('create returns the record and get finds it', async (t) => {
  const { principals } = await store(t)
  const key = await newPublicKey()
  const created = principals.create({ publicKey: hex(key).toUpperCase(), role: 'service', name: 'billing', nowMs: 1_700_000_000_000 })
  assert.deepEqual(created, {
    id: principalIdFromPublicKey(key),
    role: 'service',
    name: 'billing',
    publicKey: hex(key),
    created: 1_700_000_000_000,
    revoked: null,
  })
  assert.deepEqual(principals.get(created.id), created)
  assert.deepEqual(principals.getPublicKey(created.id), key)
  assert.equal(principals.get('0'.repeat(32)), undefined)
  assert.equal(principals.getPublicKey('0'.repeat(32)), undefined)
  assert.equal(principals.count(), 1)
})

test('a name is optional and a created time defaults to now', async (t) => {
  const { principals } = await store(t)
  const before = Date.now()
  const created = principals.create({ publicKey: await newPublicKey(), role: 'node' })
  assert.equal(created.name, null)
  assert.ok(created.created >= before && created.created <= Date.now())
})

test('a key enrolled before is a conflict, in any form and after revocation', async (t) => {
  const { principals } = await store(t)
  const key = await newPublicKey()
  const { id } = principals.create({ publicKey: key, role: 'device' })
  assert.throws(() => principals.create({ publicKey: hex(key), role: 'service' }), ConflictError)
  assert.throws(() => principals.create({ publicKey: hex(key).toUpperCase(), role: 'device' }), ConflictError)
  principals.revoke(id, Date.now())
  assert.throws(() => principals.create({ publicKey: key, role: 'device' }), ConflictError)
  assert.equal(principals.count(), 1)
})

test('create checks its input', async (t) => {
  const { principals } = await store(t)
  const key = await newPublicKey()
  assert.throws(() => principals.create({ publicKey: key, role: 'admin' as 'device' }), /role must be one of device, service, node/)
  assert.throws(() => principals.create({ publicKey: key, role: 'device', name: '' }), BadRequestError)
  assert.throws(() => principals.create({ publicKey: key, role: 'device', name: 'x'.repeat(129) }), BadRequestError)
  assert.throws(() => principals.create({ publicKey: key, role: 'device', nowMs: -1 }), BadRequestError)
  // Names are measured in code points, as SQLite and JSON schema measure them: these are
  // 128 code points but 192 UTF-16 units.
  const emoji = principals.create({ publicKey: key, role: 'device', name: '🛰️'.repeat(64) })
  assert.equal([...emoji.name!].length, 128)
  assert.equal(principals.count(), 1)
})

test('revoke sets the time once, and is not an error the second time', async (t) => {
  const { principals } = await store(t)
  const { id } = principals.create({ publicKey: await newPublicKey(), role: 'device' })
  const first = principals.revoke(id, 1000)
  assert.equal(first.changed, true)
  assert.equal(first.principal.revoked, 1000)
  const second = principals.revoke(id, 2000)
  assert.equal(second.changed, false)
  assert.equal(second.principal.revoked, 1000)
  assert.equal(principals.get(id)!.revoked, 1000)
  assert.throws(() => principals.revoke('f'.repeat(32), 1000), NotFoundError)
})

test('list pages by id and filters by role and revocation', async (t) => {
  const { principals } = await store(t)
  const created = []
  for (let i = 0; i < 7; i++) {
    created.push(principals.create({ publicKey: await newPublicKey(), role: i % 3 === 0 ? 'service' : 'device' }))
  }
  principals.revoke(created[1].id, 1)
  principals.revoke(created[3].id, 1)
  const ids = created.map((p) => p.id).sort()

  const seen: string[] = []
  let after: string | undefined
  for (let pages = 0; pages < 10; pages++) {
    const page = principals.list({ limit: 3, after })
    seen.push(...page.map((p) => p.id))
    if (page.length < 3) break
    after = page[page.length - 1].id
  }
  assert.deepEqual(seen, ids)

  const services = principals.list({ role: 'service', limit: 100 })
  assert.deepEqual(services.map((p) => p.id), created.filter((p) => p.role === 'service').map((p) => p.id).sort())
  assert.deepEqual(principals.list({ revoked: true, limit: 100 }).map((p) => p.id), [created[1].id, created[3].id].sort())
  assert.equal(principals.list({ revoked: false, limit: 100 }).length, 5)
  const revokedService = principals.list({ role: 'service', revoked: true, limit: 100, after: '' })
  assert.deepEqual(revokedService.map((p) => p.id), [created[3].id])
  assert.deepEqual(principals.list({ limit: 100, after: ids[ids.length - 1] }), [])

  assert.throws(() => principals.list({ limit: 0 }), BadRequestError)
  assert.throws(() => principals.list({ limit: 1.5 }), BadRequestError)
  assert.throws(() => principals.list({ limit: 1, role: 'x' as 'device' }), BadRequestError)
})
