/**
 * The SQLite persistence for Aedes: aedes-persistence's own abstract suite run against it,
 * then what the in-memory store cannot show: state surviving a close and reopen of the file
 * and a kill -9, the order in which writes settle, and a real Aedes broker replaced by a new
 * one on the same file while a persistent-session subscriber is away.
 */
import { test, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { createServer, type AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Readable } from 'node:stream'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { Aedes } from 'aedes'
import BetterSqlite3 from 'better-sqlite3'
import mqtt, { type MqttClient, type IClientOptions } from 'mqtt'
import { createSqlitePersistence, type SqlitePersistence, type PacketLike } from '../../broker/persistence/sqlite-persistence.js'
import { GroupCommit } from '../../broker/persistence/group-commit.js'

type After = Pick<TestContext, 'after'>

function tempDir (t: After): string {
  const dir = mkdtempSync(join(tmpdir(), 'mqtt-persistence-'))
  t.after(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}

/** Opens a persistence with a broker id set, destroyed after the test. */
async function open (t: After, file: string, brokerId = 'broker-1'): Promise<SqlitePersistence> {
  const persistence = await createSqlitePersistence({ file })
  await persistence.setup({ id: brokerId })
  t.after(() => persistence.destroy())
  return persistence
}

async function toArray<T = PacketLike> (stream: Readable): Promise<T[]> {
  const list: T[] = []
  for await (const item of stream) list.push(item as T)
  return list
}

async function waitFor (what: string, condition: () => boolean | Promise<boolean>, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise(resolve => setTimeout(resolve, 10))
  }
}

// ---------------------------------------------------------------------------------------
// aedes-persistence's abstract suite. It calls `test(name, fn)` with node:test contexts
// (t.plan, t.assert) and `persistence()` once per test: each test gets a fresh file in a
// directory of its own, removed afterwards, and every instance it opened is destroyed even
// when it fails half-way (destroy is safe to call twice).

interface AbstractOptions {
  test: (name: string, fn: (t: TestContext) => Promise<void>) => void
  persistence: () => Promise<SqlitePersistence>
  testAsync: boolean
}
const require = createRequire(import.meta.url)
const abstractPersistence = require('aedes-persistence/abstract.js') as (options: AbstractOptions) => void

let abstractCurrent: { dir: string, instances: SqlitePersistence[] } | null = null
const abstractNames: string[] = []
const abstractPassed = new Set<string>()

abstractPersistence({
  testAsync: true,
  test (name, fn) {
    abstractNames.push(name)
    test(`abstract: ${name}`, async t => {
      const current = { dir: mkdtempSync(join(tmpdir(), 'mqtt-persistence-abstract-')), instances: [] as SqlitePersistence[] }
      abstractCurrent = current
      try {
        await fn(t)
        abstractPassed.add(name)
      } finally {
        abstractCurrent = null
        for (const instance of current.instances) await instance.destroy()
        rmSync(current.dir, { recursive: true, force: true })
      }
    })
  },
  async persistence () {
    if (abstractCurrent === null) throw new Error('persistence() called outside an abstract test')
    const instance = await createSqlitePersistence({ file: join(abstractCurrent.dir, `state-${abstractCurrent.instances.length}.db`) })
    abstractCurrent.instances.push(instance)
    return instance
  },
})

test('every abstract test of aedes-persistence ran and passed', () => {
  // aedes-persistence 11.0.0 ships 50; fewer would mean the adapter lost some.
  assert.ok(abstractNames.length >= 50, `only ${abstractNames.length} abstract tests registered`)
  assert.deepEqual(abstractNames.filter(name => !abstractPassed.has(name)), [])
})

// ---------------------------------------------------------------------------------------
// Durability across close and reopen of the same file.

function publishPacket (fields: Partial<PacketLike> & { brokerCounter: number }): PacketLike {
  return {
    cmd: 'publish',
    brokerId: 'broker-1',
    topic: 'dev/1/up',
    payload: Buffer.from(`message ${fields.brokerCounter}`),
    qos: 1,
    retain: false,
    dup: false,
    ...fields,
  }
}

test('subscriptions, retained messages, queues, wills and inbound QoS 2 state survive a reopen', async t => {
  const file = join(tempDir(t), 'state.db')
  const first = await createSqlitePersistence({ file })
  await first.setup({ id: 'broker-1' })
  await first.addSubscriptions({ id: 'sub-1' }, [
    { topic: 'dev/+/up', qos: 1, rh: 0, rap: true, nl: false },
    { topic: 'dev/#', qos: 0, rh: 0, rap: false, nl: false },
    { topic: 'cmd/1', qos: 2, rh: 1, rap: false, nl: true, subscriptionIdentifier: 7 },
  ])
  await first.storeRetained({ cmd: 'publish', topic: 'state/1', payload: Buffer.from('on'), qos: 1, retain: true, brokerId: 'broker-1', brokerCounter: 1 })
  await first.storeRetained({ cmd: 'publish', topic: 'state/2', payload: Buffer.from('off'), qos: 0, retain: true })
  for (let counter = 10; counter < 15; counter++) {
    await first.outgoingEnqueueCombi([{ clientId: 'sub-1' }], publishPacket({ brokerCounter: counter }))
  }
  // The first one was in flight: its id was recorded.
  await first.outgoingUpdate({ id: 'sub-1' }, publishPacket({ brokerCounter: 10, messageId: 301 }))
  await first.putWill({ id: 'dev-1' }, { topic: 'dev/1/will', payload: Buffer.from('gone'), qos: 1, retain: false })
  await first.incomingStorePacket({ id: 'dev-1' }, { cmd: 'publish', topic: 'dev/1/up', payload: Buffer.from('q2'), qos: 2, retain: false, dup: false, messageId: 55 })
  await first.destroy()

  const second = await open(t, file, 'broker-2')
  // Reloaded in the file's (client, topic) order.
  assert.deepEqual(await second.subscriptionsByClient({ id: 'sub-1' }), [
    { topic: 'cmd/1', qos: 2, rh: 1, rap: false, nl: true, subscriptionIdentifier: 7 },
    { topic: 'dev/#', qos: 0, rh: 0, rap: false, nl: false },
    { topic: 'dev/+/up', qos: 1, rh: 0, rap: true, nl: false },
  ])
  // The in-memory matcher was rebuilt from the file: QoS ≥ 1 filters only.
  assert.deepEqual(await second.subscriptionsByTopic('dev/1/up'), [{ clientId: 'sub-1', topic: 'dev/+/up', qos: 1, rh: 0, rap: true, nl: false }])
  assert.deepEqual(await second.countOffline(), { subsCount: 2, clientsCount: 1 })

  const retained = await toArray(second.createRetainedStream('state/#'))
  assert.deepEqual(retained.map(packet => [packet.topic, packet.payload?.toString(), packet.qos]).sort(), [['state/1', 'on', 1], ['state/2', 'off', 0]])

  const queued = await toArray(second.outgoingStream({ id: 'sub-1' }))
  assert.deepEqual(queued.map(packet => packet.brokerCounter), [10, 11, 12, 13, 14])
  assert.deepEqual(queued.map(packet => packet.messageId), [301, undefined, undefined, undefined, undefined])
  assert.deepEqual(queued[1], {
    cmd: 'publish', brokerId: 'broker-1', brokerCounter: 11, topic: 'dev/1/up', payload: Buffer.from('message 11'),
    qos: 1, retain: false, dup: false, messageId: undefined,
  })

  // The will was stored by broker-1; broker-2 has not heard from it, so it is due.
  const wills = await toArray(second.streamWill({ 'broker-2': Date.now() }))
  assert.deepEqual(wills, [{ topic: 'dev/1/will', payload: Buffer.from('gone'), qos: 1, retain: false, brokerId: 'broker-1', clientId: 'dev-1' }])
  assert.deepEqual(await toArray(second.streamWill({ 'broker-1': Date.now() })), [])

  const incoming = await second.incomingGetPacket({ id: 'dev-1' }, { messageId: 55 })
  assert.equal(incoming.payload?.toString(), 'q2')
  assert.equal(incoming.qos, 2)
  assert.equal(incoming.messageId, 55)
})

test('a PUBREL replacing a queued packet, cleared packets and removed subscriptions stay so after a reopen', async t => {
  const file = join(tempDir(t), 'state.db')
  const first = await createSqlitePersistence({ file })
  await first.setup({ id: 'broker-1' })
  await first.addSubscriptions({ id: 'sub-1' }, [{ topic: 'a', qos: 1 }, { topic: 'b', qos: 1 }])
  await first.removeSubscriptions({ id: 'sub-1' }, ['a'])
  await first.outgoingEnqueue({ clientId: 'sub-1' }, publishPacket({ brokerCounter: 1, qos: 2 }))
  await first.outgoingEnqueue({ clientId: 'sub-1' }, publishPacket({ brokerCounter: 2 }))
  await first.outgoingEnqueue({ clientId: 'sub-1' }, publishPacket({ brokerCounter: 3 }))
  await first.outgoingUpdate({ id: 'sub-1' }, publishPacket({ brokerCounter: 1, qos: 2, messageId: 11 }))
  await first.outgoingUpdate({ id: 'sub-1' }, publishPacket({ brokerCounter: 2, messageId: 12 }))
  await first.outgoingUpdate({ id: 'sub-1' }, { cmd: 'pubrel', messageId: 11 })
  const acked = await first.outgoingClearMessageId({ id: 'sub-1' }, { messageId: 12 })
  assert.equal(acked?.brokerCounter, 2)
  await first.storeRetained({ cmd: 'publish', topic: 'gone', payload: Buffer.from('x'), qos: 0, retain: true })
  await first.storeRetained({ cmd: 'publish', topic: 'gone', payload: Buffer.alloc(0), qos: 0, retain: true })
  await first.putWill({ id: 'dev-1' }, { topic: 'w', payload: Buffer.from('w'), qos: 0, retain: false })
  assert.equal((await first.delWill({ id: 'dev-1' }))?.topic, 'w')
  await first.destroy()

  const second = await open(t, file)
  assert.deepEqual((await second.subscriptionsByClient({ id: 'sub-1' })).map(sub => sub.topic), ['b'])
  assert.deepEqual(await toArray(second.outgoingStream({ id: 'sub-1' })), [
    { cmd: 'pubrel', messageId: 11 },
    { cmd: 'publish', brokerId: 'broker-1', brokerCounter: 3, topic: 'dev/1/up', payload: Buffer.from('message 3'), qos: 1, retain: false, dup: false, messageId: undefined },
  ])
  assert.deepEqual(await toArray(second.createRetainedStream('#')), [])
  assert.equal(await second.getWill({ id: 'dev-1' }), undefined)
})

test('packets keep MQTT 5 properties, string payloads and message expiry; payloads are BLOBs', async t => {
  const file = join(tempDir(t), 'state.db')
  const first = await createSqlitePersistence({ file })
  await first.setup({ id: 'broker-1' })
  const properties = { correlationData: Buffer.from([1, 2, 3]), userProperties: { a: 'b', list: ['x', 'y'] }, contentType: 'application/cbor' }
  await first.outgoingEnqueue({ clientId: 'c' }, publishPacket({ brokerCounter: 1, properties, messageExpiry: 1_900_000_000_000 }))
  await first.outgoingEnqueue({ clientId: 'c' }, publishPacket({ brokerCounter: 2, payload: 'a string' }))
  await first.storeRetained({ cmd: 'publish', topic: 'r', payload: Buffer.from([0, 255]), qos: 0, retain: true, properties })
  await first.destroy()

  const second = await open(t, file)
  const [withProperties, withString] = await toArray(second.outgoingStream({ id: 'c' }))
  assert.deepEqual(withProperties.properties, properties)
  assert.ok(Buffer.isBuffer((withProperties.properties as typeof properties).correlationData))
  assert.equal(withProperties.messageExpiry, 1_900_000_000_000)
  assert.ok(Buffer.isBuffer(withProperties.payload))
  assert.equal(withString.payload, 'a string')
  const [retained] = await toArray(second.createRetainedStream('r'))
  assert.deepEqual(retained.payload, Buffer.from([0, 255]))
  assert.deepEqual(retained.properties, properties)
  await second.destroy()

  const db = new BetterSqlite3(file, { readonly: true })
  t.after(() => db.close())
  assert.deepEqual(db.prepare('SELECT typeof(payload) AS type FROM mqtt_outgoing ORDER BY seq').all(), [{ type: 'blob' }, { type: 'text' }])
  assert.deepEqual(db.prepare('SELECT typeof(payload) AS type FROM mqtt_retained').all(), [{ type: 'blob' }])
})

test('writes settle in call order, also around calls that write nothing, and reads wait for earlier writes', async t => {
  const persistence = await open(t, join(tempDir(t), 'state.db'))
  const settled: string[] = []
  const track = (name: string, promise: Promise<unknown>): Promise<unknown> => promise.then(() => { settled.push(name) })
  const calls: Array<Promise<unknown>> = []
  for (let i = 1; i <= 60; i++) {
    const packet = publishPacket({ brokerCounter: i })
    // An enqueue with no subscriber writes nothing, yet must not overtake earlier ones.
    if (i % 3 === 0) calls.push(track(`combi-${i}`, persistence.outgoingEnqueueCombi([], packet)))
    else if (i % 3 === 1) calls.push(track(`combi-${i}`, persistence.outgoingEnqueueCombi([{ clientId: 'a' }, { clientId: 'b' }], packet)))
    else calls.push(track(`single-${i}`, persistence.outgoingEnqueue({ clientId: 'a' }, packet)))
    if (i === 30) calls.push(track('read-will', persistence.getWill({ id: 'a' })))
  }
  await Promise.all(calls)
  const expected: string[] = []
  for (let i = 1; i <= 60; i++) {
    expected.push(i % 3 === 2 ? `single-${i}` : `combi-${i}`)
    if (i === 30) expected.push('read-will')
  }
  assert.deepEqual(settled, expected)
  assert.deepEqual((await toArray(persistence.outgoingStream({ id: 'a' }))).map(packet => packet.brokerCounter),
    Array.from({ length: 60 }, (_, i) => i + 1).filter(i => i % 3 !== 0))
})

test('a write settles only after the fsync that covers it; groups committed meanwhile wait for the next one', async t => {
  const db = new BetterSqlite3(':memory:')
  t.after(() => db.close())
  db.exec('CREATE TABLE t (n INTEGER)')
  const insert = db.prepare('INSERT INTO t (n) VALUES (?)')
  const pendingSyncs: Array<(err: Error | null) => void> = []
  const commit = new GroupCommit(db, {
    sync: done => { pendingSyncs.push(done) },
    onCommitError: err => { throw err },
    onSyncError: () => {},
  })
  const settled: string[] = []
  const first = commit.write(() => insert.run(1)).then(() => settled.push('first'))
  await new Promise(resolve => setImmediate(resolve))
  // Committed at the end of the turn, and one fsync started for it.
  assert.equal(pendingSyncs.length, 1)
  const second = commit.write(() => insert.run(2)).then(() => settled.push('second'))
  const read = commit.read(() => 'read').then(() => settled.push('read'))
  await new Promise(resolve => setImmediate(resolve))
  // The second group is committed too, but waits: one fsync at a time.
  assert.equal(pendingSyncs.length, 1)
  assert.deepEqual(settled, [])
  pendingSyncs.shift()!(null)
  await first
  assert.deepEqual(settled, ['first'])
  assert.equal(pendingSyncs.length, 1)
  pendingSyncs.shift()!(null)
  await Promise.all([second, read])
  assert.deepEqual(settled, ['first', 'second', 'read'])
  // A failed fsync rejects what it covered: the caller must not count it as durable.
  const third = commit.write(() => insert.run(3))
  await new Promise(resolve => setImmediate(resolve))
  pendingSyncs.shift()!(new Error('EIO'))
  await assert.rejects(third, /EIO/)
  await commit.close()
})

test('by default every write is followed by an fsync of the WAL before it settles', async t => {
  const persistence = await open(t, join(tempDir(t), 'state.db'))
  await persistence.outgoingEnqueue({ clientId: 'a' }, publishPacket({ brokerCounter: 1 }))
  const stats = persistence.commitStats
  assert.ok(stats.commits >= 1)
  assert.ok(stats.syncs >= 1, 'no WAL fsync ran')
})

test('a client listed twice in one enqueue (overlapping filters) gets one copy', async t => {
  const persistence = await open(t, join(tempDir(t), 'state.db'))
  await persistence.outgoingEnqueueCombi([{ clientId: 'a' }, { clientId: 'a' }, { clientId: 'b' }], publishPacket({ brokerCounter: 1 }))
  assert.equal((await toArray(persistence.outgoingStream({ id: 'a' }))).length, 1)
  assert.equal((await toArray(persistence.outgoingStream({ id: 'b' }))).length, 1)
  // Aedes asks to clear a dropped duplicate by a packet without a message id: nothing goes.
  assert.equal(await persistence.outgoingClearMessageId({ id: 'a' }, publishPacket({ brokerCounter: 1 })), undefined)
  assert.equal((await toArray(persistence.outgoingStream({ id: 'a' }))).length, 1)
})

test('an empty topic level matches + for an offline session as it does live (mqemitter matchEmptyLevels)', async t => {
  const persistence = await open(t, join(tempDir(t), 'state.db'))
  await persistence.addSubscriptions({ id: 'a' }, [{ topic: 'dev/+/up', qos: 1 }])
  assert.deepEqual((await persistence.subscriptionsByTopic('dev//up')).map(sub => sub.clientId), ['a'])
  await persistence.storeRetained({ cmd: 'publish', topic: 'dev//up', payload: Buffer.from('x'), qos: 0, retain: true })
  assert.equal((await toArray(persistence.createRetainedStream('dev/+/up'))).length, 1)
})

test('ids kept in memory for the live path reach the file when their rows are evicted, and on destroy', async t => {
  const file = join(tempDir(t), 'state.db')
  const first = await createSqlitePersistence({ file, hotRowsMax: 4 })
  await first.setup({ id: 'broker-1' })
  const client = { id: 'sub' }
  for (let counter = 1; counter <= 3; counter++) await first.outgoingEnqueue({ clientId: 'sub' }, publishPacket({ brokerCounter: counter }))
  for (let counter = 1; counter <= 3; counter++) await first.outgoingUpdate(client, publishPacket({ brokerCounter: counter, messageId: 100 + counter }))
  // Three more rows push the first three out of memory: their ids must be in SQLite now.
  for (let counter = 4; counter <= 6; counter++) await first.outgoingEnqueue({ clientId: 'sub' }, publishPacket({ brokerCounter: counter }))
  await first.outgoingUpdate(client, publishPacket({ brokerCounter: 6, messageId: 106 }))
  assert.deepEqual((await toArray(first.outgoingStream(client))).map(packet => packet.messageId), [101, 102, 103, undefined, undefined, 106])
  assert.equal((await first.outgoingClearMessageId(client, { messageId: 102 }))?.brokerCounter, 2)
  assert.equal((await first.outgoingClearMessageId(client, { messageId: 106 }))?.brokerCounter, 6)
  await first.outgoingUpdate(client, publishPacket({ brokerCounter: 5, messageId: 105 }))
  await first.destroy()

  const second = await open(t, file)
  assert.deepEqual((await toArray(second.outgoingStream(client))).map(packet => [packet.brokerCounter, packet.messageId]),
    [[1, 101], [3, 103], [4, undefined], [5, 105]])
  assert.equal((await second.outgoingClearMessageId(client, { messageId: 105 }))?.brokerCounter, 5)
})

test('two queued packets sent with the same id are both found, first in queue order first', async t => {
  const persistence = await open(t, join(tempDir(t), 'state.db'))
  const client = { id: 'sub' }
  await persistence.outgoingEnqueue({ clientId: 'sub' }, publishPacket({ brokerCounter: 1 }))
  await persistence.outgoingEnqueue({ clientId: 'sub' }, publishPacket({ brokerCounter: 2 }))
  await persistence.outgoingUpdate(client, publishPacket({ brokerCounter: 1, messageId: 7 }))
  await persistence.outgoingUpdate(client, publishPacket({ brokerCounter: 2, messageId: 7 }))
  assert.deepEqual((await toArray(persistence.outgoingStream(client))).map(packet => packet.messageId), [7, 7])
  assert.equal((await persistence.outgoingClearMessageId(client, { messageId: 7 }))?.brokerCounter, 1)
  assert.equal((await persistence.outgoingClearMessageId(client, { messageId: 7 }))?.brokerCounter, 2)
  assert.equal(await persistence.outgoingClearMessageId(client, { messageId: 7 }), undefined)
})

test('destroy is safe to call twice, and later calls reject instead of touching a closed file', async t => {
  const persistence = await createSqlitePersistence({ file: join(tempDir(t), 'state.db') })
  await persistence.setup({ id: 'broker-1' })
  // A write left pending is committed by destroy, not lost.
  const pending = persistence.outgoingEnqueue({ clientId: 'a' }, publishPacket({ brokerCounter: 1 }))
  await persistence.destroy()
  await pending
  await persistence.destroy()
  await assert.rejects(persistence.outgoingEnqueue({ clientId: 'a' }, publishPacket({ brokerCounter: 2 })), /destroyed/)
  await assert.rejects(persistence.storeRetained({ topic: 'x', payload: Buffer.from('x') }), /destroyed/)
})

test('a second opener of the same file is refused while the first holds it', async t => {
  const file = join(tempDir(t), 'state.db')
  await open(t, file)
  const db = new BetterSqlite3(file, { timeout: 50 })
  t.after(() => db.close())
  assert.throws(() => db.prepare('SELECT COUNT(*) FROM mqtt_outgoing').get(), /locked|busy/i)
})

test('what was acknowledged before a kill -9 is in the file afterwards', async t => {
  const dir = tempDir(t)
  const file = join(dir, 'state.db')
  const moduleUrl = pathToFileURL(fileURLToPath(new URL('../../broker/persistence/sqlite-persistence.ts', import.meta.url))).href
  const script = join(dir, 'writer.mts')
  // The child queues 500 packets, says so once every promise has resolved, keeps writing
  // without waiting, and is killed with SIGKILL as soon as the parent reads that line.
  writeFileSync(script, `
import { createSqlitePersistence } from ${JSON.stringify(moduleUrl)}
const persistence = await createSqlitePersistence({ file: ${JSON.stringify(file)} })
await persistence.setup({ id: 'crashing-broker' })
const packet = (n) => ({ cmd: 'publish', brokerId: 'crashing-broker', brokerCounter: n, topic: 't', payload: Buffer.from('p' + n), qos: 1, retain: false, dup: false })
const writes = []
for (let n = 1; n <= 500; n++) writes.push(persistence.outgoingEnqueue({ clientId: 'sub' }, packet(n)))
await Promise.all(writes)
await persistence.storeRetained({ cmd: 'publish', topic: 'r', payload: Buffer.from('kept'), qos: 1, retain: true })
await persistence.outgoingEnqueue({ clientId: 'sub' }, packet(501))
process.stdout.write('acknowledged\\n')
let n = 502
setInterval(() => { persistence.outgoingEnqueue({ clientId: 'sub' }, packet(n++)) }, 1)
`)
  const child = spawn(process.execPath, ['--import', 'tsx', script], { cwd: fileURLToPath(new URL('../..', import.meta.url)), stdio: ['ignore', 'pipe', 'inherit'] })
  t.after(() => { if (child.exitCode === null) child.kill('SIGKILL') })
  let output = ''
  await new Promise<void>((resolve, reject) => {
    child.stdout.on('data', (chunk: Buffer) => {
      output += chunk.toString()
      if (output.includes('acknowledged')) {
        child.kill('SIGKILL')
        resolve()
      }
    })
    child.on('exit', code => reject(new Error(`writer exited with ${code} before acknowledging`)))
  })
  if (child.exitCode === null && child.signalCode === null) await once(child, 'exit')
  assert.equal(child.signalCode, 'SIGKILL')

  const persistence = await open(t, file)
  const counters = (await toArray(persistence.outgoingStream({ id: 'sub' }))).map(packet => packet.brokerCounter as number)
  assert.ok(counters.length >= 501, `only ${counters.length} of 501 acknowledged packets survived`)
  assert.deepEqual(counters.slice(0, 501), Array.from({ length: 501 }, (_, i) => i + 1))
  assert.deepEqual(counters, Array.from({ length: counters.length }, (_, i) => i + 1), 'what survived beyond is a prefix, in order')
  const [retained] = await toArray(persistence.createRetainedStream('r'))
  assert.equal(retained?.payload?.toString(), 'kept')
})

// ---------------------------------------------------------------------------------------
// A real Aedes broker with real mqtt.js clients.

interface TestBroker {
  aedes: Aedes
  persistence: SqlitePersistence
  url: string
  close: () => Promise<void>
}

async function startBroker (t: After, file: string): Promise<TestBroker> {
  const persistence = await createSqlitePersistence({ file })
  const aedes = await Aedes.createBroker({ persistence })
  const server = createServer(socket => {
    socket.setNoDelay(true)
    aedes.handle(socket)
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  let closing: Promise<void> | null = null
  // Aedes's close() leaves its persistence open: the owner destroys it, last.
  const close = (): Promise<void> => {
    closing ??= (async () => {
      await new Promise<void>(resolve => aedes.close(() => resolve()))
      await new Promise<void>(resolve => server.close(() => resolve()))
      await persistence.destroy()
    })()
    return closing
  }
  t.after(close)
  return { aedes, persistence, url: `mqtt://127.0.0.1:${(server.address() as AddressInfo).port}`, close }
}

async function connect (t: After, url: string, options: IClientOptions): Promise<MqttClient> {
  const client = await mqtt.connectAsync(url, { reconnectPeriod: 0, ...options })
  t.after(() => client.endAsync(true))
  return client
}

test('a persistent-session subscriber gets every message exactly once across a broker restart on the same file', async t => {
  const file = join(tempDir(t), 'state.db')
  const total = 300
  const first = await startBroker(t, file)

  const subscriber = await connect(t, first.url, { clientId: 'sub-1', clean: false })
  await subscriber.subscribeAsync('dev/+/up', { qos: 1 })
  const gone = once(first.aedes, 'clientDisconnect')
  await subscriber.endAsync()
  await gone

  const publisher = await connect(t, first.url, { clientId: 'pub-1', clean: true })
  await Promise.all(Array.from({ length: total }, (_, i) => publisher.publishAsync(`dev/${i % 7}/up`, `m${i}`, { qos: 1 })))
  await publisher.endAsync()
  // Every message is queued for the absent subscriber (publish callbacks have fired).
  assert.equal((await toArray(first.persistence.outgoingStream({ id: 'sub-1' }))).length, total)
  await first.close()

  const second = await startBroker(t, file)
  const received: string[] = []
  const resumed = mqtt.connect(second.url, { clientId: 'sub-1', clean: false, reconnectPeriod: 0 })
  t.after(() => resumed.endAsync(true))
  resumed.on('message', (_topic, payload) => received.push(payload.toString()))
  const connack = await new Promise<{ sessionPresent: boolean }>(resolve => resumed.once('connect', resolve))
  assert.equal(connack.sessionPresent, true)
  await waitFor(`${total} messages`, () => received.length >= total)
  // Give duplicates a chance to show, and the PUBACKs time to empty the queue.
  await waitFor('an empty queue', async () => (await toArray(second.persistence.outgoingStream({ id: 'sub-1' }))).length === 0)
  await new Promise(resolve => setTimeout(resolve, 200))
  assert.deepEqual(received, Array.from({ length: total }, (_, i) => `m${i}`))
})

test('a live persistent-session subscriber skips no QoS 1 message under load, and its queue drains', async t => {
  const broker = await startBroker(t, join(tempDir(t), 'state.db'))
  const total = 2_000
  const received: string[] = []
  const subscriber = await connect(t, broker.url, { clientId: 'sub-live', clean: false })
  subscriber.on('message', (_topic, payload) => received.push(payload.toString()))
  await subscriber.subscribeAsync('dev/+/up', { qos: 1 })
  // Three publishers interleave, so that several sockets feed each commit group.
  const publishers = await Promise.all([0, 1, 2].map(i => connect(t, broker.url, { clientId: `pub-${i}`, clean: true })))
  await Promise.all(publishers.map((publisher, p) => Promise.all(
    Array.from({ length: total / 4 }, (_, i) => publisher.publishAsync(`dev/${p}/up`, `${p}:${i}`, { qos: 1 })))))
  // And a retained QoS 1 message between non-retained ones from the same publisher.
  await publishers[0].publishAsync('dev/0/up', 'retained', { qos: 1, retain: true })
  await Promise.all(Array.from({ length: total / 4 - 1 }, (_, i) => publishers[0].publishAsync('dev/0/up', `tail:${i}`, { qos: 1 })))
  await waitFor(`${total} messages`, () => received.length >= total)
  await waitFor('an empty queue', async () => (await toArray(broker.persistence.outgoingStream({ id: 'sub-live' }))).length === 0)
  assert.equal(received.length, total)
  assert.equal(new Set(received).size, total)
  // Each publisher's messages arrive in the order it sent them.
  for (const prefix of ['0:', '1:', '2:', 'tail:']) {
    const seen = received.filter(m => m.startsWith(prefix)).map(m => Number(m.slice(prefix.length)))
    assert.deepEqual(seen, [...seen].sort((a, b) => a - b), `order of ${prefix}`)
  }
})
