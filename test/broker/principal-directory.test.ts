/**
 * The broker's principal directory over the real registry: cached entries are answered
 * without reading the store, misses for one id share one read, and a revocation (forget)
 * is never undone by a read that started before it.
 */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { PrincipalDirectory } from '../../src/auth/principal-keys.js'
import { PrincipalStore } from '../../src/store/index.js'
import { sqliteEngine } from '../helpers/sql-engines.js'
import { makeKeyPair } from '../helpers/hub.js'

async function registry (t: Parameters<typeof sqliteEngine.open>[0]): Promise<{ principals: PrincipalStore, reads: string[], lookup: (id: string) => ReturnType<PrincipalStore['get']> }> {
  const principals = new PrincipalStore(await sqliteEngine.open(t))
  const reads: string[] = []
  return {
    principals,
    reads,
    lookup: id => {
      reads.push(id)
      return principals.get(id)
    },
  }
}

test('a cached principal is answered without a read; misses for one id share one read', async t => {
  const { principals, reads, lookup } = await registry(t)
  const device = makeKeyPair()
  await principals.create({ publicKey: device.publicKey, role: 'device' })
  const directory = new PrincipalDirectory(lookup)
  const [a, b, c] = await Promise.all([directory.get(device.id), directory.get(device.id), directory.get(device.id)])
  assert.deepEqual(reads, [device.id])
  assert.equal(a!.id, device.id)
  assert.equal(a!.role, 'device')
  assert.equal(a!.revoked, false)
  assert.ok(a === b && b === c)
  assert.equal(await directory.get(device.id), a)
  assert.deepEqual(reads, [device.id], 'the hit read nothing')
})

test('unknown ids are not cached; a failed read rejects and the next one reads again', async t => {
  const { principals, reads, lookup } = await registry(t)
  const device = makeKeyPair()
  const directory = new PrincipalDirectory(lookup)
  assert.equal(await directory.get(device.id), undefined)
  await principals.create({ publicKey: device.publicKey, role: 'device' })
  assert.equal((await directory.get(device.id))!.id, device.id)
  assert.deepEqual(reads, [device.id, device.id])

  let failing = true
  const flaky = new PrincipalDirectory(id => failing ? Promise.reject(new Error('database unreachable')) : principals.get(id))
  await assert.rejects(flaky.get(device.id), /database unreachable/)
  failing = false
  assert.equal((await flaky.get(device.id))!.id, device.id)
})

test('forget: a read under way when a principal is revoked is not cached', async t => {
  const { principals, lookup } = await registry(t)
  const device = makeKeyPair()
  await principals.create({ publicKey: device.publicKey, role: 'device' })
  // The first read sees the store before the revocation and is held until after forget().
  let read!: () => void
  const didRead = new Promise<void>(resolve => { read = resolve })
  let release!: () => void
  const held = new Promise<void>(resolve => { release = resolve })
  let first = true
  const directory = new PrincipalDirectory(async id => {
    const record = await lookup(id)
    if (first) {
      first = false
      read()
      await held
    }
    return record
  })
  const stale = directory.get(device.id)
  await didRead
  await principals.revoke(device.id, Date.now())
  directory.forget(device.id)
  assert.equal((await directory.get(device.id))!.revoked, true, 'a lookup after forget() reads the store again')
  release()
  assert.equal((await stale)!.revoked, false, 'those who asked before the revocation get what the store said then')
  assert.equal((await directory.get(device.id))!.revoked, true, 'the stale answer did not replace the cached one')
})

test('with revalidateMs 0 every lookup reads the store again, keeping the key object while nothing changed', async t => {
  const { principals, reads, lookup } = await registry(t)
  const device = makeKeyPair()
  await principals.create({ publicKey: device.publicKey, role: 'device' })
  const directory = new PrincipalDirectory(lookup, 10, 0)
  const first = await directory.get(device.id)
  const second = await directory.get(device.id)
  assert.equal(reads.length, 2)
  assert.equal(first, second)
  await principals.revoke(device.id, Date.now())
  assert.equal((await directory.get(device.id))!.revoked, true)
})
