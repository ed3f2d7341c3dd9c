/**
 * The device uplink of protocol-v1 §4–§7, end to end: a real device (mqtt.js) publishes on
 * its up topic, a real service receives bridge records, and every rejection reason is
 * answered with the right Ack, counted, and never bridged.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { verify, createPublicKey, randomBytes } from 'node:crypto'
import { decode as cborgDecode } from 'cborg'
import { encodeCbor, encodeBatch, idBytes, sigStructure, REJECT_CODES, type RejectReason } from '../../src/protocol/index.js'
import { startTestHub, makeKeyPair } from '../helpers/hub.js'
import { connectTestDevice, connectTestService, metricValue } from '../helpers/device.js'

/** An envelope map written key by key, for fields encodeEnvelope rightly refuses to write. */
function handMade (device: { principal: { id: string } }, fields: Record<number, unknown>): Uint8Array {
  const map = new Map<number, unknown>([
    [0, 1], [1, 1], [2, new Uint8Array(randomBytes(16))], [3, device.principal.id], [5, Date.now()], [7, { temp: 1 }], [13, true],
  ])
  for (const [key, value] of Object.entries(fields)) map.set(Number(key), value)
  return encodeCbor(map)
}

test('an unsigned StatusUpdate is bridged with every field of §6 and acknowledged', async t => {
  const hub = await startTestHub(t)
  const service = await connectTestService(t, hub)
  const device = await connectTestDevice(t, hub)
  const envelope = device.envelope({ body: { temp: 21.5, hum: 40 }, ack: true })
  await device.up(envelope)
  const [record] = await service.decoded(1)
  assert.equal(service.records.messages[0].topic, `mn/v1/bridge/status_update/${device.principal.id}`)
  // The wire form, read by an independent decoder: integer keys exactly as §6 lists them.
  const wire = cborgDecode(service.records.messages[0].payload, { useMaps: true }) as Map<number, unknown>
  assert.deepEqual([...wire.keys()], [0, 1, 3, 5, 7, 10, 11, 12])
  assert.equal(wire.get(0), 1)
  assert.equal(wire.get(1), 1)
  assert.equal(wire.get(3), device.principal.id)
  assert.equal(typeof wire.get(5), 'number')
  assert.deepEqual(Object.fromEntries(wire.get(7) as Map<string, unknown>), { temp: 21.5, hum: 40 })
  assert.equal(wire.get(10), hub.nodeId)
  assert.equal(wire.get(11), false)
  assert.deepEqual(Buffer.from(wire.get(12) as Uint8Array), Buffer.from(envelope))
  assert.equal(record.signed, false)
  const [ack] = await device.ackBodies(1)
  assert.equal(ack.ok, true)
  assert.equal(ack.code, 0)
  assert.equal(ack.reason, '')
})

test('a signed envelope is bridged as signed, and a service can verify the raw bytes itself', async t => {
  const hub = await startTestHub(t)
  const service = await connectTestService(t, hub)
  const device = await connectTestDevice(t, hub)
  const signed = device.signed({ prio: 1, ack: true })
  await device.up(signed)
  const [record] = await service.decoded(1)
  assert.equal(record.signed, true)
  const raw = Buffer.from(record.raw)
  assert.deepEqual(raw, Buffer.from(signed))
  // Re-derive the signature input from the raw COSE_Sign1: tag 18 (0xd2), array of 4.
  const { decodeCbor } = await import('../../src/protocol/index.js')
  const [protectedBytes, , payload, signature] = decodeCbor(raw.subarray(1)) as [Uint8Array, unknown, Uint8Array, Uint8Array]
  const key = createPublicKey({ key: Buffer.concat([Buffer.from('302a300506032b6570032100', 'hex'), device.principal.publicKey]), format: 'der', type: 'spki' })
  assert.equal(verify(null, sigStructure(protectedBytes, payload), key, signature), true)
  const [ack] = await device.ackBodies(1)
  assert.equal(ack.ok, true)
})

test('a compressed body (enc 1) is bridged inflated, without key 9', async t => {
  const hub = await startTestHub(t)
  const service = await connectTestService(t, hub)
  const device = await connectTestDevice(t, hub)
  const body = { samples: Array.from({ length: 200 }, (_, i) => i % 7) }
  await device.up(device.envelope({ body, compress: true, ack: true }))
  const [record] = await service.decoded(1)
  assert.deepEqual(record.body, body)
  const wire = cborgDecode(service.records.messages[0].payload, { useMaps: true }) as Map<number, unknown>
  assert.equal(wire.has(9), false)
  assert.equal((await device.ackBodies(1))[0].ok, true)
})

test('each rejection reason gets its Ack code and is counted; nothing is bridged', async t => {
  const hub = await startTestHub(t, { protocol: { skewMs: 30_000 } })
  const service = await connectTestService(t, hub)
  const device = await connectTestDevice(t, hub)
  const other = makeKeyPair()
  const cases: Array<[RejectReason, Uint8Array]> = [
    ['version', handMade(device, { 0: 2 })],
    ['type', handMade(device, { 1: 99 })],
    ['type', handMade(device, { 1: 70, 7: { re: new Uint8Array(16), ok: true, code: 0, reason: '' } })],
    ['src', device.envelope({ ack: true, src: other.id })],
    ['skew', device.envelope({ ack: true, ts: Date.now() - 60_000 })],
    ['skew', device.envelope({ ack: true, ts: Date.now() + 60_000 })],
    ['unsigned', device.envelope({ ack: true, prio: 0 })],
    ['unsigned', device.envelope({ ack: true, prio: 1 })],
    ['unsigned', device.envelope({ ack: true, type: 32, body: { kind: 'tamper', detail: 'lid open' } })],
    ['signature', device.signed({ ack: true }, other.sign)],
    ['signature', device.signed({ ack: true }, device.principal.sign, idBytes(other.id))],
    ['body', device.envelope({ ack: true, type: 62, body: { version: 'one' } })],
    ['body', device.envelope({ ack: true, type: 1, body: 'not a map' })],
  ]
  for (const [, payload] of cases) await device.up(payload)
  const acks = await device.ackBodies(cases.length)
  assert.deepEqual(
    acks.map(a => [a.ok, a.code, a.reason]),
    cases.map(([reason]) => [false, REJECT_CODES[reason], reason]),
  )
  for (const reason of ['version', 'type', 'src', 'skew', 'unsigned', 'signature', 'body']) {
    assert.ok(await metricValue(hub, 'metanode_rejections_total', `reason="${reason}"`) >= 1, reason)
  }
  // A sentinel proves the rejected ones were not bridged before it.
  await device.up(device.envelope({ body: { sentinel: true } }))
  const [record] = await service.decoded(1)
  assert.deepEqual(record.body, { sentinel: true })
  assert.equal(service.records.messages.length, 1)
})

test('a replayed envelope is bridged once; its second Ack says replay', async t => {
  const hub = await startTestHub(t)
  const service = await connectTestService(t, hub)
  const device = await connectTestDevice(t, hub)
  const envelope = device.envelope({ ack: true })
  await device.up(envelope)
  await device.up(envelope)
  const acks = await device.ackBodies(2)
  assert.deepEqual(acks.map(a => a.reason), ['', 'replay'])
  assert.equal(acks[1].code, REJECT_CODES.replay)
  await device.up(device.envelope({ body: { sentinel: true } }))
  await service.decoded(2)
  assert.equal(service.records.messages.length, 2)
})

test('a rejected message does not consume its id', async t => {
  const hub = await startTestHub(t)
  const service = await connectTestService(t, hub)
  const device = await connectTestDevice(t, hub)
  const id = new Uint8Array(16).fill(7)
  await device.up(device.envelope({ id, ack: true, body: 'bad body' }))
  await device.up(device.envelope({ id, ack: true }))
  const acks = await device.ackBodies(2)
  assert.deepEqual(acks.map(a => a.reason), ['body', ''])
  await service.decoded(1)
})

test('undecodable and oversize payloads are dropped and counted (no Ack is possible)', async t => {
  const hub = await startTestHub(t, { protocol: { payloadBytesMax: 1024 } })
  const service = await connectTestService(t, hub)
  const device = await connectTestDevice(t, hub)
  await device.up(Buffer.from('not cbor at all \xff\xff'))
  await device.up(encodeCbor({ 0: 1 }))
  await device.up(device.envelope({ body: { blob: new Uint8Array(2000) } }))
  await device.up(Buffer.from([0x80])) // an empty batch
  await device.up(device.envelope({ body: { sentinel: true } }))
  await service.decoded(1)
  assert.equal(service.records.messages.length, 1)
  assert.ok(await metricValue(hub, 'metanode_rejections_total', 'reason="decode"') >= 3)
  assert.ok(await metricValue(hub, 'metanode_rejections_total', 'reason="too_large"') >= 1)
  assert.equal(device.client.connected, true)
})

test('a batch with one bad item bridges the others, each with its own raw bytes', async t => {
  const hub = await startTestHub(t)
  const service = await connectTestService(t, hub)
  const device = await connectTestDevice(t, hub)
  const items = [
    device.envelope({ body: { n: 1 }, ack: true }),
    device.envelope({ body: { n: 2 }, ack: true, prio: 0 }), // unsigned critical: refused
    device.signed({ body: { n: 3 }, ack: true }),
  ]
  await device.up(encodeBatch(items))
  const records = await service.decoded(2)
  assert.deepEqual(records.map(r => r.body), [{ n: 1 }, { n: 3 }])
  assert.deepEqual(Buffer.from(records[1].raw), Buffer.from(items[2]))
  const acks = await device.ackBodies(3)
  assert.deepEqual(acks.map(a => a.reason).sort(), ['', '', 'unsigned'])
})

test('a batch of more than 256 items is refused whole', async t => {
  const hub = await startTestHub(t, { protocol: { payloadBytesMax: 1 << 20 }, clients: { packetBytesMax: 2 << 20 } })
  const service = await connectTestService(t, hub)
  const device = await connectTestDevice(t, hub)
  const items = Array.from({ length: 257 }, () => device.envelope({}))
  await device.up(encodeBatchUnchecked(items))
  await device.up(device.envelope({ body: { sentinel: true } }))
  const [record] = await service.decoded(1)
  assert.deepEqual(record.body, { sentinel: true })
  assert.ok(await metricValue(hub, 'metanode_rejections_total', 'reason="too_large"') >= 1)
})

test('a QoS 1 redelivery is bridged once', async t => {
  const hub = await startTestHub(t)
  const service = await connectTestService(t, hub)
  const device = await connectTestDevice(t, hub)
  const envelope = device.envelope({})
  // The same PUBLISH twice, the second flagged DUP as a redelivery would be.
  await device.client.publishAsync(`mn/v1/d/${device.principal.id}/up`, Buffer.from(envelope), { qos: 1 })
  await device.client.publishAsync(`mn/v1/d/${device.principal.id}/up`, Buffer.from(envelope), { qos: 1, dup: true })
  await device.up(device.envelope({ body: { sentinel: true } }))
  await service.decoded(2)
  assert.equal(service.records.messages.length, 2)
})

test('publishing outside its topics is acknowledged, discarded, counted as acl; the connection stays', async t => {
  const hub = await startTestHub(t)
  const service = await connectTestService(t, hub)
  const device = await connectTestDevice(t, hub)
  const victim = makeKeyPair()
  await device.client.publishAsync(`mn/v1/d/${victim.id}/up`, Buffer.from(device.envelope({})), { qos: 1 })
  await device.client.publishAsync('mn/v1/bridge/status_update/x', Buffer.from('x'), { qos: 1, retain: true })
  await device.client.publishAsync('elsewhere', Buffer.from('x'), { qos: 2 })
  // mqtt.js turns a SUBACK with a return code 0x80 into an error carrying the packet.
  await assert.rejects(device.client.subscribeAsync(['mn/v1/bridge/#', '#']), (err: Error & { packet?: { granted: number[] } }) => {
    assert.deepEqual(err.packet?.granted, [128, 128])
    return true
  })
  await device.up(device.envelope({ body: { sentinel: true } }))
  await service.decoded(1)
  assert.equal(service.records.messages.length, 1)
  assert.ok(await metricValue(hub, 'metanode_rejections_total', 'reason="acl"') >= 5)
  assert.equal(device.client.connected, true)
})

test('a client that keeps sending bad traffic past the threshold is disconnected', async t => {
  const hub = await startTestHub(t, { clients: { badPacketsMax: 3 } })
  const device = await connectTestDevice(t, hub)
  const closed = new Promise<void>(resolve => device.client.once('close', () => resolve()))
  for (let i = 0; i < 5; i++) device.client.publish(`mn/v1/d/${device.principal.id}/up`, Buffer.from('junk'), { qos: 0 })
  await closed
  assert.ok(await metricValue(hub, 'metanode_abuse_disconnects_total') >= 1)
})

test('a packet far over the size cap ends the connection before it is buffered', async t => {
  const hub = await startTestHub(t, { clients: { packetBytesMax: 100_000 } })
  const device = await connectTestDevice(t, hub)
  const closed = new Promise<void>(resolve => device.client.once('close', () => resolve()))
  device.client.publish(`mn/v1/d/${device.principal.id}/up`, Buffer.alloc(500_000), { qos: 0 })
  await closed
})

/** An array header for any count, then the items: encodeBatch refuses more than 256. */
function encodeBatchUnchecked (items: Uint8Array[]): Uint8Array {
  const head = items.length < 256 ? Buffer.from([0x98, items.length]) : Buffer.from([0x99, items.length >> 8, items.length & 0xff])
  return Buffer.concat([head, ...items])
}

test('publishes over the rate limit are slowed down, not lost', async t => {
  const hub = await startTestHub(t, { clients: { publishesPerSecond: 20, publishBurst: 5 } })
  const service = await connectTestService(t, hub)
  const device = await connectTestDevice(t, hub)
  const sent = Array.from({ length: 15 }, (_, n) => device.envelope({ body: { n } }))
  await Promise.all(sent.map(payload => device.up(payload)))
  const records = await service.decoded(15)
  assert.deepEqual(records.map(r => (r.body as { n: number }).n), [...Array(15).keys()], 'all delivered, in order')
})

test('a client past its subscription limit gets 0x80 for further filters', async t => {
  const hub = await startTestHub(t, { clients: { subscriptionsMax: 2 } })
  const service = await connectTestService(t, hub, 'mn/v1/bridge/status_update/+')
  await service.client.subscribeAsync('mn/v1/bridge/heartbeat/+')
  await assert.rejects(service.client.subscribeAsync('mn/v1/bridge/state_update/+'), (err: Error & { packet?: { granted: number[] } }) => {
    assert.deepEqual(err.packet?.granted, [128])
    return true
  })
})
