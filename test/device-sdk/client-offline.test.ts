/**
 * The device client with no hub to talk to: option checks, the offline queue's bounds and
 * policies, close() semantics and connect failures. Nothing listens on the URL, so every
 * publish stays queued.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import {
  DeviceClient, ServiceClient, connectDevice, generateKeyPair, ArgumentError, ClosedError, QueueFullError, TimeoutError,
  PayloadTooLargeError, type DeviceClientOptions,
} from '../../device-sdk/index.js'
import { deadPort, FAST_RECONNECT } from './helpers.js'

async function offlineDevice (t: { after (fn: () => unknown): void }, options: Partial<DeviceClientOptions> = {}): Promise<DeviceClient> {
  const device = new DeviceClient({ url: `mqtt://127.0.0.1:${await deadPort()}`, keyPair: generateKeyPair(), reconnect: FAST_RECONNECT, ...options })
  t.after(() => device.close())
  return device.start()
}

test('options are checked when the client is made, saying what was wrong', () => {
  const keyPair = generateKeyPair()
  const url = 'mqtt://localhost:1883'
  assert.throws(() => new DeviceClient({ url: 'http://localhost', keyPair }), /mqtt:\/\//)
  assert.throws(() => new DeviceClient({ url, keyPair: undefined as never }), /keyPair/)
  assert.throws(() => new DeviceClient({ url, keyPair, batch: { maxItems: 300 } }), /batch.maxItems must be an integer from 1 to 256, got 300/)
  assert.throws(() => new DeviceClient({ url, keyPair, offlineQueueMax: 0 }), ArgumentError)
  assert.throws(() => new DeviceClient({ url, keyPair, offlineQueuePolicy: 'newest' as never }), /offlineQueuePolicy/)
  assert.throws(() => new DeviceClient({ url, keyPair, reconnect: { jitter: 2 } }), /jitter/)
  assert.throws(() => new DeviceClient({ url, keyPair, hubId: 'HUB' }), /hubId/)
})

test('bad publishes reject at once, before anything is queued', async (t) => {
  const device = await offlineDevice(t)
  await assert.rejects(device.publish('Ack' as never, {}), /not a type a device may send/)
  await assert.rejects(device.publish('ConfigurationUpdate' as never, {}), ArgumentError)
  await assert.rejects(device.publish('NoSuchType' as never, {}), /unknown message type/)
  await assert.rejects(device.publish('StatusUpdate', { t: 1 }, { prio: 7 as never }), /prio/)
  await assert.rejects(device.publish('StatusUpdate', { t: 1 }, { prio: 1, sign: false }), /must be signed/)
  await assert.rejects(device.publish('SecurityAlert', { kind: 'tamper', detail: 'lid' }, { sign: false }), /must be signed/)
  await assert.rejects(device.publish('StatusUpdate', { t: 1 }, { id: new Uint8Array(3) }), /16 bytes/)
  await assert.rejects(device.publish('StatusUpdate', { f: () => 1 }), /cannot be encoded as CBOR/)
  await assert.rejects(device.publish('StatusUpdate', { big: 'x'.repeat(70_000) }, { compress: false }), PayloadTooLargeError)
  assert.equal(device.queued, 0)
})

test("'reject' policy: a full offline queue refuses new publishes and keeps the queued ones", async (t) => {
  const device = await offlineDevice(t, { offlineQueueMax: 2 })
  const first = device.publish('StatusUpdate', { n: 1 })
  const second = device.publish('StatusUpdate', { n: 2 })
  await assert.rejects(device.publish('StatusUpdate', { n: 3 }), (err: unknown) => err instanceof QueueFullError && !err.dropped)
  assert.equal(device.queued, 2)
  assert.equal(device.stats.queueFull, 1)
  await device.close()
  await assert.rejects(first, ClosedError)
  await assert.rejects(second, ClosedError)
})

test("'drop-oldest' policy: the oldest least urgent publish is rejected to make room", async (t) => {
  const device = await offlineDevice(t, { offlineQueueMax: 2, offlineQueuePolicy: 'drop-oldest' })
  const oldest = device.publish('StatusUpdate', { n: 1 }, { prio: 3 })
  const urgent = device.publish('StatusUpdate', { n: 2 }, { prio: 1 })
  const newest = device.publish('StatusUpdate', { n: 3 })
  await assert.rejects(oldest, (err: unknown) => err instanceof QueueFullError && err.dropped)
  assert.equal(device.queued, 2)
  await device.close()
  await assert.rejects(urgent, ClosedError)
  await assert.rejects(newest, ClosedError)
})

test('the offline queue stays within offlineQueueMax under a flood', async (t) => {
  const device = await offlineDevice(t, { offlineQueueMax: 100, offlineQueuePolicy: 'drop-oldest' })
  const results = Array.from({ length: 1_000 }, (_, n) => device.publish('StatusUpdate', { n }).catch((err: Error) => err))
  assert.equal(device.queued, 100)
  await device.close()
  const errors = await Promise.all(results)
  assert.equal(errors.filter(e => e instanceof QueueFullError).length, 900)
  assert.equal(errors.filter(e => e instanceof ClosedError).length, 100)
})

test('close() is idempotent, rejects pending publishes with ClosedError, and later calls reject too', async (t) => {
  const device = await offlineDevice(t)
  const pending = device.publish('Heartbeat', undefined, { ack: false })
  const flushed = device.flush()
  await Promise.all([device.close(), device.close()])
  await assert.rejects(pending, (err: Error) => err instanceof ClosedError && /closed before the hub acknowledged/.test(err.message))
  await flushed
  await assert.rejects(device.publish('StatusUpdate', { n: 1 }), ClosedError)
  assert.throws(() => device.start(), ClosedError)
  await device.close()
})

test('connectDevice rejects with TimeoutError when the hub cannot be reached, and leaves nothing running', async () => {
  const port = await deadPort()
  const reconnecting: number[] = []
  const device = new DeviceClient({ url: `mqtt://127.0.0.1:${port}`, keyPair: generateKeyPair(), reconnect: FAST_RECONNECT, connectTimeoutMs: 300 })
  device.on('reconnecting', info => reconnecting.push(info.attempt))
  await assert.rejects(device.connect(), (err: unknown) => err instanceof TimeoutError && /last error: .*ECONNREFUSED/.test(err.message))
  assert.ok(reconnecting.length > 0, 'it retried before giving up')
  assert.deepEqual(reconnecting, reconnecting.map((_, i) => i), 'attempts count up from 0')
  await assert.rejects(connectDevice({ url: `mqtt://127.0.0.1:${port}`, keyPair: generateKeyPair(), connectTimeoutMs: 100 }), TimeoutError)
})

test('close() during connect() rejects it with ClosedError', async () => {
  const device = new DeviceClient({ url: `mqtt://127.0.0.1:${await deadPort()}`, keyPair: generateKeyPair(), reconnect: FAST_RECONNECT })
  const connecting = device.connect()
  await device.close()
  await assert.rejects(connecting, ClosedError)
})

test('handlers can only be set for types that reach a device', async (t) => {
  const device = await offlineDevice(t)
  assert.throws(() => device.onMessage('Ack' as never, () => {}), /never reaches/)
  assert.throws(() => device.onMessage(1, () => {}), /StatusUpdate/)
  const off = device.onMessage('MiningReward', () => {})
  off()
  off()
})

test('a service client: close() ends its records() iterators, pending next() calls included', async () => {
  const service = new ServiceClient({ url: `mqtt://127.0.0.1:${await deadPort()}`, keyPair: generateKeyPair(), reconnect: FAST_RECONNECT }).start()
  const records = service.records()
  const first = records.next()
  const second = records.next()
  await service.close()
  assert.deepEqual(await first, { done: true, value: undefined })
  assert.deepEqual(await second, { done: true, value: undefined })
  assert.deepEqual(await service.records().next(), { done: true, value: undefined })
  await assert.rejects(service.sendToDevice('a'.repeat(32), 'ConfigurationUpdate', {}), ClosedError)
  assert.throws(() => new ServiceClient({ url: 'mqtt://localhost', keyPair: generateKeyPair(), types: ['NoSuchType' as never] }), /unknown message type/)
})
