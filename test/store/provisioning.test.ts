/**
 * Provisioning tokens, on both engines: making, listing, revoking and redeeming them, and
 * that a token's uses hold however many redemptions race, in one process or across several
 * sharing one PostgreSQL database.
 */
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { BadRequestError, ConflictError, ForbiddenError, NotFoundError, UnauthorizedError } from '../../src/errors.js'
import { PrincipalStore, ProvisioningStore, type SqlDatabase } from '../../src/store/index.js'
import { sharedDatabase, sqlEngines, postgresEngine } from '../helpers/sql-engines.js'
import { hex, newPublicKey } from './helpers.js'

const HOUR = 3_600_000

function stores (db: SqlDatabase): { principals: PrincipalStore, provisioning: ProvisioningStore } {
  const principals = new PrincipalStore(db)
  return { principals, provisioning: new ProvisioningStore(db, principals) }
}

for (const engine of sqlEngines()) {
  describe(`provisioning tokens on ${engine.name}`, { skip: engine.skip }, () => {
    test('create returns the secret once; get and list show the record without it', async (t) => {
      const { provisioning } = stores(await engine.open(t))
      const nowMs = 1_800_000_000_000
      const { token, record } = await provisioning.create({ role: 'device', name: 'line-3', usesMax: 2, expires: nowMs + HOUR, nowMs })
      assert.match(token, /^[A-Za-z0-9_-]{43}$/)
      assert.deepEqual(record, { id: record.id, role: 'device', name: 'line-3', usesMax: 2, uses: 0, expires: nowMs + HOUR, created: nowMs, revoked: null })
      assert.deepEqual(await provisioning.get(record.id), record)
      assert.equal(await provisioning.get('nope'), undefined)
      const later = await provisioning.create({ role: 'service', usesMax: 1, expires: nowMs + 2 * HOUR, nowMs: nowMs + 1 })
      assert.deepEqual((await provisioning.list()).map(r => r.id), [later.record.id, record.id], 'newest first')
      assert.equal(JSON.stringify(await provisioning.list()).includes(token), false)
    })

    test('create checks its input', async (t) => {
      const { provisioning } = stores(await engine.open(t))
      const nowMs = Date.now()
      await assert.rejects(provisioning.create({ role: 'king' as 'device', usesMax: 1, expires: nowMs + HOUR }), BadRequestError)
      await assert.rejects(provisioning.create({ role: 'device', usesMax: 0, expires: nowMs + HOUR }), BadRequestError)
      await assert.rejects(provisioning.create({ role: 'device', usesMax: 1.5, expires: nowMs + HOUR }), BadRequestError)
      await assert.rejects(provisioning.create({ role: 'device', usesMax: 1, expires: nowMs - 1, nowMs }), BadRequestError)
      await assert.rejects(provisioning.create({ role: 'device', usesMax: 1, expires: nowMs + HOUR, name: 'a\0b' }), BadRequestError)
      assert.deepEqual(await provisioning.list(), [])
    })

    test('revoke stamps the time once; unknown ids are not found', async (t) => {
      const { provisioning } = stores(await engine.open(t))
      const { record } = await provisioning.create({ role: 'device', usesMax: 1, expires: Date.now() + HOUR })
      assert.equal((await provisioning.revoke(record.id, 1000)).revoked, 1000)
      assert.equal((await provisioning.revoke(record.id, 2000)).revoked, 1000)
      await assert.rejects(provisioning.revoke('nope'), NotFoundError)
      await assert.rejects(provisioning.revoke('a\0b'), NotFoundError)
    })

    test('redeem enrols with the token\'s role and name, up to its uses', async (t) => {
      const { principals, provisioning } = stores(await engine.open(t))
      const { token, record } = await provisioning.create({ role: 'service', name: 'billing', usesMax: 2, expires: Date.now() + HOUR })
      const first = await provisioning.redeem(token, { publicKey: hex(await newPublicKey()) })
      assert.equal(first.principal.role, 'service')
      assert.equal(first.principal.name, 'billing')
      assert.equal(first.token.uses, 1)
      assert.deepEqual(await principals.get(first.principal.id), first.principal)
      const second = await provisioning.redeem(token, { publicKey: hex(await newPublicKey()), name: 'own-name' })
      assert.equal(second.principal.name, 'own-name')
      assert.equal(second.token.uses, 2)
      await assert.rejects(provisioning.redeem(token, { publicKey: hex(await newPublicKey()) }), (err: unknown) => err instanceof ForbiddenError && /used up/.test(err.message))
      assert.equal((await provisioning.get(record.id))!.uses, 2)
      assert.equal(await principals.count(), 2)
    })

    test('a key enrolled before is a conflict, and the use is not counted', async (t) => {
      const { principals, provisioning } = stores(await engine.open(t))
      const { token, record } = await provisioning.create({ role: 'device', usesMax: 3, expires: Date.now() + HOUR })
      const key = hex(await newPublicKey())
      await provisioning.redeem(token, { publicKey: key })
      await assert.rejects(provisioning.redeem(token, { publicKey: key }), ConflictError)
      await assert.rejects(provisioning.redeem(token, { publicKey: hex(await newPublicKey()), name: '' }), BadRequestError)
      assert.equal((await provisioning.get(record.id))!.uses, 1)
      assert.equal(await principals.count(), 1)
    })

    test('unknown, revoked and expired tokens are refused', async (t) => {
      const { principals, provisioning } = stores(await engine.open(t))
      const key = hex(await newPublicKey())
      await assert.rejects(provisioning.redeem('x'.repeat(43), { publicKey: key }), UnauthorizedError)
      const revoked = await provisioning.create({ role: 'device', usesMax: 1, expires: Date.now() + HOUR })
      await provisioning.revoke(revoked.record.id)
      await assert.rejects(provisioning.redeem(revoked.token, { publicKey: key }), (err: unknown) => err instanceof ForbiddenError && /revoked/.test(err.message))
      const nowMs = Date.now()
      const expiring = await provisioning.create({ role: 'device', usesMax: 1, expires: nowMs + 1_000, nowMs })
      await assert.rejects(provisioning.redeem(expiring.token, { publicKey: key }, nowMs + 1_000), (err: unknown) => err instanceof ForbiddenError && /expired/.test(err.message))
      assert.equal(await principals.count(), 0)
      assert.equal((await provisioning.redeem(expiring.token, { publicKey: key }, nowMs + 999)).token.uses, 1)
    })

    test('redemptions racing for a token enrol exactly its uses', async (t) => {
      const { principals, provisioning } = stores(await engine.open(t))
      const { token, record } = await provisioning.create({ role: 'device', usesMax: 3, expires: Date.now() + HOUR })
      const keys = await Promise.all(Array.from({ length: 10 }, () => newPublicKey()))
      const results = await Promise.allSettled(keys.map(key => provisioning.redeem(token, { publicKey: hex(key) })))
      assert.equal(results.filter(r => r.status === 'fulfilled').length, 3)
      for (const r of results) if (r.status === 'rejected') assert.ok(r.reason instanceof ForbiddenError, String(r.reason))
      assert.equal((await provisioning.get(record.id))!.uses, 3)
      assert.equal(await principals.count(), 3)
    })
  })
}

describe('provisioning shared by processes (PostgreSQL)', { skip: postgresEngine.skip }, () => {
  test('a token of one use redeemed at once through two connections enrols one principal', async (t) => {
    const { connect } = await sharedDatabase(postgresEngine, t)
    const first = await connect()
    const second = await connect()
    const hosts = [stores(first), stores(second)]
    const { token, record } = await hosts[0].provisioning.create({ role: 'device', usesMax: 1, expires: Date.now() + HOUR })
    const keys = await Promise.all(Array.from({ length: 12 }, () => newPublicKey()))
    const results = await Promise.allSettled(keys.map((key, i) => hosts[i % 2].provisioning.redeem(token, { publicKey: hex(key) })))
    const enrolled = results.filter(r => r.status === 'fulfilled')
    assert.equal(enrolled.length, 1)
    for (const r of results) if (r.status === 'rejected') assert.ok(r.reason instanceof ForbiddenError && /used up/.test(r.reason.message), String(r.reason))
    assert.equal((await hosts[1].provisioning.get(record.id))!.uses, 1)
    assert.equal(await hosts[1].principals.count(), 1)
    const [principal] = await hosts[0].principals.list({ limit: 10 })
    assert.equal(principal.id, enrolled[0].status === 'fulfilled' ? enrolled[0].value.principal.id : null)
  })
})
