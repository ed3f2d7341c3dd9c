/**
 * The device and service clients against a real hub (src/hub.ts on ephemeral ports, real
 * SQLite in a temp dir, real MQTT over TCP and WebSocket).
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { WebSocket } from 'ws'
import {
  AckError, ConnectError, TimeoutError, connectDevice, generateKeyPair, toBridgeRecord,
  type BridgeRecord, type DownMessage, type StateDelta,
} from '../../device-sdk/index.js'
import { parsePayload, toHex } from '../../src/protocol/index.js'
import { startTestHub, tempDir, mqttUrl } from '../helpers/hub.js'
import { startProxy } from './proxy.js'
import { FAST_RECONNECT, enrolledKeyPair, nextEvent, openDevice, openService } from './helpers.js'

async function nextRecord (records: AsyncIterator<BridgeRecord>): Promise<BridgeRecord> {
  const { value, done } = await records.next()
  assert.equal(done, false)
  return value as BridgeRecord
}

test('publish resolves with the hub Ack, and a service receives the bridge record', async (t) => {
  const hub = await startTestHub(t)
  const service = await openService(t, hub)
  const records = service.records()
  const device = await openDevice(t, hub, { hubId: hub.nodeId })
  assert.equal(device.connected, true)

  const ack = await device.publish('StatusUpdate', { temp: 21.5, door: 'open' })
  assert.equal(ack.ok, true)
  assert.equal(ack.code, 0)
  assert.equal(ack.reason, '')
  assert.equal(ack.replayed, false)

  const record = await nextRecord(records)
  assert.equal(record.topic, `mn/v1/bridge/status_update/${device.id}`)
  assert.equal(record.type, 1)
  assert.equal(record.typeName, 'StatusUpdate')
  assert.equal(record.src, device.id)
  assert.equal(record.hubId, hub.nodeId)
  assert.deepEqual(record.body, { temp: 21.5, door: 'open' })
  assert.equal(record.signed, false)
  assert.equal(record.verify(generateKeyPair().publicKey), false, 'an unsigned record never verifies')
  assert.equal(device.stats.delivered, 1)
})

test('signed publishes: prio 0/1 and must-sign types are signed, and services can verify the device', async (t) => {
  const hub = await startTestHub(t)
  const service = await openService(t, hub)
  const records = service.records()
  const keyPair = await enrolledKeyPair(hub)
  const device = await openDevice(t, hub, { keyPair })

  assert.equal((await device.publish('StatusUpdate', { valve: 'closed' }, { prio: 1 })).ok, true)
  assert.equal((await device.publish('SecurityAlert', { kind: 'tamper', detail: 'lid opened' })).ok, true)
  assert.equal((await device.publish('StatusUpdate', { t: 1 }, { sign: true })).ok, true)

  for (const type of [1, 32, 1]) {
    const record = await nextRecord(records)
    assert.equal(record.type, type)
    assert.equal(record.signed, true)
    assert.equal(record.verify(keyPair.publicKey), true)
    assert.equal(record.verify(toHex(keyPair.publicKey).toUpperCase()), true)
    assert.equal(record.verify(generateKeyPair().publicKey), false)
  }
})

test('messages queued within maxDelayMs go as one batch; maxBytes splits them', async (t) => {
  const hub = await startTestHub(t)
  const service = await openService(t, hub)
  const records = service.records()
  // No timer can fire during the test: the batch is sent because it reached maxItems.
  const device = await openDevice(t, hub, { batch: { maxItems: 5, maxDelayMs: 3_600_000 } })
  const acks = await Promise.all([1, 2, 3, 4, 5].map(n => device.publish('StatusUpdate', { n })))
  assert.ok(acks.every(ack => ack.ok))
  assert.deepEqual(device.stats, { ...device.stats, payloadsSent: 1, envelopesSent: 5, delivered: 5 })
  for (const n of [1, 2, 3, 4, 5]) assert.deepEqual((await nextRecord(records)).body, { n })

  const small = await openDevice(t, hub, { batch: { maxItems: 256, maxDelayMs: 0, maxBytes: 400 } })
  const body = { pad: 'x'.repeat(100) }
  const many = await Promise.all(Array.from({ length: 12 }, () => small.publish('StatusUpdate', body)))
  assert.ok(many.every(ack => ack.ok))
  assert.equal(small.stats.envelopesSent, 12)
  assert.ok(small.stats.payloadsSent > 1 && small.stats.payloadsSent < 12, `12 envelopes in ${small.stats.payloadsSent} payloads`)
})

test('bodies above compressAboveBytes travel deflated (enc 1) and arrive whole', async (t) => {
  const hub = await startTestHub(t)
  const service = await openService(t, hub)
  const records = service.records()
  const device = await openDevice(t, hub, { compressAboveBytes: 1024 })
  const body = { log: 'sensor ok; '.repeat(2_000), n: 7 }
  assert.equal((await device.publish('StatusUpdate', body)).ok, true)
  assert.equal((await device.publish('StatusUpdate', { small: true })).ok, true)

  const big = await nextRecord(records)
  assert.deepEqual(big.body, body)
  const parsed = parsePayload(big.raw, { payloadBytesMax: 1 << 20, direction: 'up' })
  assert.ok(parsed.ok)
  assert.equal(parsed.items[0].envelope?.enc, 1)
  assert.ok(big.raw.length < 2_000, `sent ${big.raw.length} bytes for a ${body.log.length}-character body`)
  const small = await nextRecord(records)
  const smallParsed = parsePayload(small.raw, { payloadBytesMax: 1 << 20, direction: 'up' })
  assert.ok(smallParsed.ok)
  assert.equal(smallParsed.items[0].envelope?.enc, 0)
})

test('a rejecting Ack becomes an AckError with its code and reason', async (t) => {
  const hub = await startTestHub(t)
  const device = await openDevice(t, hub)
  await assert.rejects(device.publish('StatusSync', { version: 'not a number' } as never), (err: unknown) => {
    assert.ok(err instanceof AckError)
    assert.equal(err.code, 10)
    assert.equal(err.reason, 'body')
    assert.match(err.message, /version/, 'the message says what is wrong with the body')
    return true
  })
  assert.equal(device.stats.rejected, 1)
  // The connection is still fine afterwards.
  assert.equal((await device.publish('Heartbeat', { uptimeS: 5 })).ok, true)
})

test('a repeated id is answered with replay, which counts as delivered', async (t) => {
  const hub = await startTestHub(t)
  const device = await openDevice(t, hub)
  const id = new Uint8Array(randomBytes(16))
  const first = await device.publish('StatusUpdate', { n: 1 }, { id })
  assert.equal(first.replayed, false)
  const again = await device.publish('StatusUpdate', { n: 1 }, { id })
  assert.equal(again.ok, true)
  assert.equal(again.replayed, true)
})

test('ack: false resolves once the hub has taken the message (PUBACK)', async (t) => {
  const hub = await startTestHub(t)
  const service = await openService(t, hub)
  const records = service.records()
  const device = await openDevice(t, hub)
  assert.equal(await device.publish('StatusUpdate', { quiet: true }, { ack: false }), undefined)
  assert.deepEqual((await nextRecord(records)).body, { quiet: true })
})

test('an Ack lost with the connection: the resend after reconnect is deduplicated and resolves as replayed', async (t) => {
  const hub = await startTestHub(t)
  const service = await openService(t, hub)
  const records = service.records()
  const proxy = await startProxy(t, hub.mqttPort)
  const device = await openDevice(t, hub, { url: proxy.url })

  proxy.setDeaf(true) // the hub's Ack (and PUBACK) will not reach the device
  const pending = device.publish('StatusUpdate', { n: 1 })
  assert.deepEqual((await nextRecord(records)).body, { n: 1 }, 'the hub accepted it')
  const reconnected = nextEvent(device, 'connect')
  proxy.setDeaf(false)
  proxy.cut()
  await reconnected
  const ack = await pending
  assert.equal(ack.ok, true)
  assert.equal(ack.replayed, true)
  assert.equal(device.stats.envelopesSent, 2, 'sent twice, with the same id')

  // Exactly one record for it: the next one the service sees is the next message.
  assert.equal((await device.publish('StatusUpdate', { n: 2 })).replayed, false)
  assert.deepEqual((await nextRecord(records)).body, { n: 2 })
})

test('no Ack while connected: TimeoutError after timeoutMs', async (t) => {
  const hub = await startTestHub(t)
  const proxy = await startProxy(t, hub.mqttPort)
  const device = await openDevice(t, hub, { url: proxy.url })
  proxy.setDeaf(true)
  await assert.rejects(device.publish('StatusUpdate', { n: 1 }, { timeoutMs: 200 }), (err: unknown) => err instanceof TimeoutError && err.timeoutMs === 200)
  assert.equal(device.stats.timedOut, 1)
})

test('offline: publishes wait in the queue and are flushed on reconnect, with a fresh password each time', async (t) => {
  const hub = await startTestHub(t)
  const service = await openService(t, hub)
  const records = service.records()
  const proxy = await startProxy(t, hub.mqttPort)
  const device = await openDevice(t, hub, { url: proxy.url })

  proxy.setDown(true)
  const disconnected = nextEvent(device, 'disconnect')
  proxy.cut()
  await disconnected
  assert.equal(device.connected, false)
  const pending = [1, 2, 3].map(n => device.publish('StatusUpdate', { n }))
  assert.equal(device.queued, 3)
  // Let it fail a few reconnects before the network comes back.
  const accepted = proxy.accepted
  await proxy.waitAccepted(accepted + 2)
  proxy.setDown(false)

  const acks = await Promise.all(pending)
  assert.ok(acks.every(ack => ack.ok && !ack.replayed))
  for (const n of [1, 2, 3]) assert.deepEqual((await nextRecord(records)).body, { n })
  assert.equal(device.queued, 0)
  // Cut again: a reconnect with a reused nonce would be refused (protocol-v1 §2).
  const again = nextEvent(device, 'connect')
  proxy.cut()
  await again
  assert.equal(device.stats.connects, 3)
  assert.equal((await device.publish('StatusUpdate', { n: 4 })).ok, true)
})

test('the offline queue survives a hub restart and is delivered to the new hub process', async (t) => {
  const dataDir = tempDir(t)
  const first = await startTestHub(t, { dataDir })
  const keyPair = await enrolledKeyPair(first)
  const device = await openDevice(t, first, { keyPair })
  const port = first.mqttPort

  const disconnected = nextEvent(device, 'disconnect')
  await first.close()
  await disconnected
  const pending = device.publish('StatusUpdate', { afterRestart: true })
  assert.equal(device.queued, 1)

  const second = await startTestHub(t, { dataDir, mqttPort: port })
  assert.equal(second.nodeId, first.nodeId)
  const ack = await pending
  assert.equal(ack.ok, true)
})

test('down messages: a service sends ConfigurationUpdate and a state delta; the device handlers get them', async (t) => {
  const hub = await startTestHub(t)
  const serviceKey = await enrolledKeyPair(hub, 'service')
  const service = await openService(t, hub, { keyPair: serviceKey })
  const device = await openDevice(t, hub)

  const configs: Array<[unknown, DownMessage]> = []
  const deltas: StateDelta[] = []
  const all: string[] = []
  const gotConfig = new Promise<void>(resolve => device.onConfig((config, message) => {
    configs.push([config, message])
    if (configs.length === 2) resolve()
  }))
  const gotDelta = new Promise<void>(resolve => device.onStateDelta(delta => {
    deltas.push(delta)
    resolve()
  }))
  device.onMessage('*', (_body, message) => { all.push(message.typeName) })
  const commands: Array<[unknown, string]> = []
  const gotCommand = new Promise<void>(resolve => device.onCommand((body, message) => {
    commands.push([body, message.typeName])
    resolve()
  }))

  await service.sendToDevice(device.id, 'ConfigurationUpdate', { intervalMs: 5_000 })
  await service.sendToDevice(device.id, 'ConfigurationUpdate', { intervalMs: 1_000 }, { prio: 1 })
  await service.sendToDevice(device.id, 'StateUpdate', { delta: { led: 'on' }, version: 3 })
  await service.sendToDevice(device.id, 'MiningReward', { amount: 5 })
  await Promise.all([gotConfig, gotDelta, gotCommand])

  assert.deepEqual(configs.map(([config]) => config), [{ intervalMs: 5_000 }, { intervalMs: 1_000 }])
  const [unsigned, signed] = configs.map(([, message]) => message)
  assert.equal(unsigned.src, service.id)
  assert.equal(unsigned.dst, device.id)
  assert.equal(unsigned.signed, false)
  assert.equal(unsigned.verify(serviceKey.publicKey), false)
  assert.equal(signed.signed, true)
  assert.equal(signed.prio, 1)
  assert.equal(signed.verify(serviceKey.publicKey), true)
  assert.equal(signed.verify(generateKeyPair().publicKey), false)
  assert.deepEqual(deltas, [{ delta: { led: 'on' }, version: 3 }])
  assert.deepEqual(commands, [[{ amount: 5 }, 'MiningReward']], 'onCommand gets what is neither configuration nor state')
  assert.deepEqual(all, ['ConfigurationUpdate', 'ConfigurationUpdate', 'StateUpdate', 'MiningReward'])
})

test('reportState sends StateUpdate { reported }, and a service can ask for chosen types only', async (t) => {
  const hub = await startTestHub(t)
  const alerts = (await openService(t, hub, { types: ['SecurityAlert', 32] })).records()
  const states = (await openService(t, hub, { types: ['StateUpdate'] })).records()
  const device = await openDevice(t, hub)
  assert.equal((await device.publish('StatusUpdate', { ignored: true })).ok, true)
  assert.equal((await device.reportState({ led: 'on', firmware: '1.2.0' })).ok, true)
  assert.equal((await device.publish('SecurityAlert', { kind: 'tamper', detail: { lid: 'open' } })).ok, true)
  const state = await nextRecord(states)
  assert.equal(state.typeName, 'StateUpdate')
  assert.deepEqual(state.body, { reported: { led: 'on', firmware: '1.2.0' } })
  assert.equal((await nextRecord(alerts)).typeName, 'SecurityAlert')
})

test('hubPublicKey: signed Acks from the hub resolve; Acks the key did not sign are ignored', async (t) => {
  const hub = await startTestHub(t, { signAcks: true })
  const hubPublicKey = (JSON.parse(readFileSync(join(hub.config.dataDir, 'node-key.json'), 'utf8')) as { publicKey: string }).publicKey
  const trusting = await openDevice(t, hub, { hubId: hub.nodeId, hubPublicKey })
  assert.equal((await trusting.publish('StatusUpdate', { n: 1 })).ok, true)

  const wary = await openDevice(t, hub, { hubPublicKey: generateKeyPair().publicKey })
  const errors: Error[] = []
  wary.on('error', err => errors.push(err))
  await assert.rejects(wary.publish('StatusUpdate', { n: 2 }, { timeoutMs: 2_000 }), TimeoutError)
  assert.match(errors[0]?.message ?? '', /without a valid signature/)
})

test('a throwing handler is reported on error and does not stop the others', async (t) => {
  const hub = await startTestHub(t)
  const service = await openService(t, hub)
  const device = await openDevice(t, hub)
  const errors: Error[] = []
  device.on('error', err => errors.push(err))
  device.onConfig(() => { throw new Error('handler bug') })
  const received = new Promise(resolve => device.onConfig(resolve))
  await service.sendToDevice(device.id, 'ConfigurationUpdate', { a: 1 })
  assert.deepEqual(await received, { a: 1 })
  assert.equal(errors.length, 1)
  assert.equal(errors[0].message, 'handler bug')
})

test('a principal the hub does not know is refused with ConnectError (return code 4)', async (t) => {
  const hub = await startTestHub(t)
  await assert.rejects(connectDevice({ url: mqttUrl(hub), keyPair: generateKeyPair(), connectTimeoutMs: 10_000 }), (err: unknown) => {
    assert.ok(err instanceof ConnectError)
    assert.equal(err.returnCode, 4)
    assert.match(err.message, /not enrolled/)
    return true
  })
})

test('a device whose Acks come from another src ignores them when hubId is set', async (t) => {
  const hub = await startTestHub(t)
  const device = await openDevice(t, hub, { hubId: 'f'.repeat(32) })
  const errors: Error[] = []
  device.on('error', err => errors.push(err))
  await assert.rejects(device.publish('StatusUpdate', { n: 1 }, { timeoutMs: 2_000 }), TimeoutError)
  assert.match(errors[0]?.message ?? '', /not the hub/)
})

test('over WebSocket: Node Buffer password and the browser password patch both connect', async (t) => {
  const hub = await startTestHub(t)
  const url = `ws://127.0.0.1:${hub.httpPort}/mqtt`
  const viaBuffer = await openDevice(t, hub, { url })
  assert.equal((await viaBuffer.publish('StatusUpdate', { ws: 'buffer' })).ok, true)

  const viaPatch = await openDevice(t, hub, {
    url,
    passwordTransport: 'websocket',
    mqtt: { createWebsocket: (wsUrl: string, protocols: string[]) => new WebSocket(wsUrl, protocols) },
  })
  assert.equal((await viaPatch.publish('StatusUpdate', { ws: 'patched' })).ok, true)
})

test('over WebSocket with the browser password patch, every reconnect patches its own fresh password', async (t) => {
  const hub = await startTestHub(t)
  const proxy = await startProxy(t, hub.httpPort)
  const device = await openDevice(t, hub, {
    url: proxy.url.replace('mqtt://', 'ws://') + '/mqtt',
    passwordTransport: 'websocket',
    mqtt: { createWebsocket: (wsUrl: string, protocols: string[]) => new WebSocket(wsUrl, protocols) },
  })
  for (let n = 0; n < 2; n++) {
    const reconnected = nextEvent(device, 'connect')
    proxy.cut()
    await reconnected
  }
  assert.equal(device.stats.connects, 3)
  assert.equal((await device.publish('StatusUpdate', { ws: 'after reconnects' })).ok, true)
})

test('toBridgeRecord refuses a payload that is not a bridge record', () => {
  assert.throws(() => toBridgeRecord('mn/v1/bridge/x/y', new Uint8Array([0xa0])))
})
