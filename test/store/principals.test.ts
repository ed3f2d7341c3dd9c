/**
 * The registry of principals, on both engines: the same suite against the SQLite file and
 * a real PostgreSQL server, plus what only a database shared by processes shows.
 */
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { BadRequestError, ConflictError, NotFoundError } from '../../src/errors.js'
import { PrincipalStore, principalIdFromPublicKey } from '../../src/store/index.js'
import { sharedDatabase, sqlEngines, postgresEngine } from '../helpers/sql-engines.js'
import { hex, newPublicKey } from './helpers.js'

for (const engine of sqlEngines()) {
  describe(`principals on ${engine.name}`, { skip: engine.skip }, () => {
    test('create returns the record and get finds it', async (t) => {
      const principals = new PrincipalStore(await engine.open(t))
      const key = await newPublicKey()
      const created = await principals.create({ publicKey: hex(key).toUpperCase(), role: 'service', name: 'billing', nowMs: 1_700_000_000_000 })
      assert.deepEqual(created, {
        id: principalIdFromPublicKey(key),
        role: 'service',
        name: 'billing',
        publicKey: hex(key),
        created: 1_700_000_000_000,
        revoked: null,
      })
      assert.deepEqual(await principals.get(created.id), created)
      assert.deepEqual(await principals.getPublicKey(created.id), key)
      assert.equal(await principals.get('0'.repeat(32)), undefined)
      assert.equal(await principals.getPublicKey('0'.repeat(32)), undefined)
      assert.equal(await principals.count(), 1)
    })

    test('a name is optional and a created time defaults to now', async (t) => {
      const principals = new PrincipalStore(await engine.open(t))
      const before = Date.now()
      const created = await principals.create({ publicKey: await newPublicKey(), role: 'node' })
      assert.equal(created.name, null)
      assert.ok(created.created >= before && created.created <= Date.now())
    })

    test('a key enrolled before is a conflict, in any form and after revocation', async (t) => {
      const principals = new PrincipalStore(await engine.open(t))
      const key = await newPublicKey()
      const { id } = await principals.create({ publicKey: key, role: 'device' })
      await assert.rejects(principals.create({ publicKey: hex(key), role: 'service' }), ConflictError)
      await assert.rejects(principals.create({ publicKey: hex(key).toUpperCase(), role: 'device' }), ConflictError)
      await principals.revoke(id, Date.now())
      await assert.rejects(principals.create({ publicKey: key, role: 'device' }), ConflictError)
      assert.equal(await principals.count(), 1)
    })

    test('create checks its input', async (t) => {
      const principals = new PrincipalStore(await engine.open(t))
      const key = await newPublicKey()
      await assert.rejects(principals.create({ publicKey: key, role: 'admin' as 'device' }), /role must be one of device, service, node/)
      await assert.rejects(principals.create({ publicKey: key, role: 'device', name: '' }), BadRequestError)
      await assert.rejects(principals.create({ publicKey: key, role: 'device', name: 'x'.repeat(129) }), BadRequestError)
      await assert.rejects(principals.create({ publicKey: key, role: 'device', nowMs: -1 }), BadRequestError)
      // PostgreSQL's text cannot hold NUL: refused on either engine, as a bad request.
      await assert.rejects(principals.create({ publicKey: key, role: 'device', name: 'a\0b' }), BadRequestError)
      // Names are measured in code points, as both engines and JSON schema measure them:
      // these are 128 code points but 192 UTF-16 units.
      const emoji = await principals.create({ publicKey: key, role: 'device', name: '🛰️'.repeat(64) })
      assert.equal([...emoji.name!].length, 128)
      assert.equal((await principals.get(emoji.id))!.name, emoji.name)
      assert.equal(await principals.count(), 1)
    })

    test('revoke sets the time once, and is not an error the second time', async (t) => {
      const principals = new PrincipalStore(await engine.open(t))
      const { id } = await principals.create({ publicKey: await newPublicKey(), role: 'device' })
      const first = await principals.revoke(id, 1000)
      assert.equal(first.changed, true)
      assert.equal(first.principal.revoked, 1000)
      const second = await principals.revoke(id, 2000)
      assert.equal(second.changed, false)
      assert.equal(second.principal.revoked, 1000)
      assert.equal((await principals.get(id))!.revoked, 1000)
      await assert.rejects(principals.revoke('f'.repeat(32), 1000), NotFoundError)
    })

    test('rename sets and clears the name; unknown ids are not found', async (t) => {
      const principals = new PrincipalStore(await engine.open(t))
      const { id } = await principals.create({ publicKey: await newPublicKey(), role: 'device' })
      assert.equal((await principals.rename(id, 'kiln')).name, 'kiln')
      assert.equal((await principals.get(id))!.name, 'kiln')
      assert.equal((await principals.rename(id, null)).name, null)
      await assert.rejects(principals.rename(id, ''), BadRequestError)
      await assert.rejects(principals.rename('0'.repeat(32), 'x'), NotFoundError)
    })

    test('an id with NUL in it is simply unknown, on either engine', async (t) => {
      const principals = new PrincipalStore(await engine.open(t))
      const { id } = await principals.create({ publicKey: await newPublicKey(), role: 'device' })
      const odd = `${id.slice(0, 8)}\0`
      assert.equal(await principals.get(odd), undefined)
      assert.equal(await principals.getPublicKey(odd), undefined)
      await assert.rejects(principals.revoke(odd, 1), NotFoundError)
      await assert.rejects(principals.rename(odd, 'x'), NotFoundError)
      // A cursor is cut at NUL, which in byte order pages exactly as the whole string would.
      assert.deepEqual((await principals.list({ limit: 10, after: '\0zz' })).map(p => p.id), [id])
      assert.deepEqual(await principals.list({ limit: 10, after: `${id}\0` }), [])
    })

    test('list pages by id and filters by role and revocation', async (t) => {
      const principals = new PrincipalStore(await engine.open(t))
      const created = []
      for (let i = 0; i < 7; i++) {
        created.push(await principals.create({ publicKey: await newPublicKey(), role: i % 3 === 0 ? 'service' : 'device' }))
      }
      await principals.revoke(created[1].id, 1)
      await principals.revoke(created[3].id, 1)
      const ids = created.map((p) => p.id).sort()

      const seen: string[] = []
      let after: string | undefined
      for (let pages = 0; pages < 10; pages++) {
        const page = await principals.list({ limit: 3, after })
        seen.push(...page.map((p) => p.id))
        if (page.length < 3) break
        after = page[page.length - 1].id
      }
      assert.deepEqual(seen, ids)

      const services = await principals.list({ role: 'service', limit: 100 })
      assert.deepEqual(services.map((p) => p.id), created.filter((p) => p.role === 'service').map((p) => p.id).sort())
      assert.deepEqual((await principals.list({ revoked: true, limit: 100 })).map((p) => p.id), [created[1].id, created[3].id].sort())
      assert.equal((await principals.list({ revoked: false, limit: 100 })).length, 5)
      const revokedService = await principals.list({ role: 'service', revoked: true, limit: 100, after: '' })
      assert.deepEqual(revokedService.map((p) => p.id), [created[3].id])
      assert.deepEqual(await principals.list({ limit: 100, after: ids[ids.length - 1] }), [])

      await assert.rejects(principals.list({ limit: 0 }), BadRequestError)
      await assert.rejects(principals.list({ limit: 1.5 }), BadRequestError)
      await assert.rejects(principals.list({ limit: 1, role: 'x' as 'device' }), BadRequestError)
    })

    test('a revocation inside a failed transaction is rolled back with it', async (t) => {
      const db = await engine.open(t)
      const principals = new PrincipalStore(db)
      const { id } = await principals.create({ publicKey: await newPublicKey(), role: 'device' })
      await assert.rejects(db.transaction(async () => {
        await principals.revoke(id, 1000)
        throw new Error('the audit entry failed')
      }), /audit entry failed/)
      assert.equal((await principals.get(id))!.revoked, null)
    })
  })
}

describe('principals shared by processes (PostgreSQL)', { skip: postgresEngine.skip }, () => {
  test('one key enrolled at once through two connections: one principal, the other a conflict', async (t) => {
    const { connect } = await sharedDatabase(postgresEngine, t)
    const first = await connect()
    const second = await connect()
    const stores = [new PrincipalStore(first), new PrincipalStore(second)]
    const key = await newPublicKey()
    const results = await Promise.allSettled(Array.from({ length: 8 }, (_, i) => stores[i % 2].create({ publicKey: key, role: 'device' })))
    assert.equal(results.filter(r => r.status === 'fulfilled').length, 1)
    for (const r of results) if (r.status === 'rejected') assert.ok(r.reason instanceof ConflictError, String(r.reason))
    assert.equal(await stores[1].count(), 1)
  })
})
