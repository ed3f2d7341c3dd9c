/**
 * The state flows over MQTT with real mqtt.js devices on a real hub, with HTTP beside:
 * deltas after PATCH and on reconnect, reports and their Acks, StatusSync, refusals.
 * Nothing here waits for time to pass: absence is shown by order (QoS 1 messages from the
 * hub to one device arrive in the order the hub sent them).
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { pino } from 'pino'
import { MessageType, REJECT_CODES, decodeCbor, encodeEnvelope, toHex, type Envelope } from '../../src/protocol/index.js'
import { createStateMqtt } from '../../src/state/mqtt.js'
import type { StateService } from '../../src/state/service.js'
import { FeatureRejection, type AcceptedMessage } from '../../broker/index.js'
import { verifyEnvelope } from '../../device-sdk/verify.js'
import { startTestHub, enrollPrincipal, connectClient, mqttUrl, principalOptions, type TestPrincipal } from '../helpers/hub.js'
import { connectTestDevice, type TestDevice } from '../helpers/device.js'
import type { Hub } from '../../src/hub.js'
import { call, downStream, statePath } from './helpers.js'

type Down = ReturnType<typeof downStream>

function stateUpdate (device: TestDevice, reported: unknown, ack = true): Uint8Array {
  return device.envelope({ type: MessageType.StateUpdate, body: { reported }, ack })
}

function statusSync (device: TestDevice, version: number, ack = true): Uint8Array {
  return device.envelope({ type: MessageType.StatusSync, body: { version }, ack })
}

function assertDelta (envelope: Envelope, hub: Hub, deviceId: string, body: unknown): void {
  assert.equal(envelope.type, MessageType.StateUpdate, `expected a StateUpdate, got type ${envelope.type}`)
  assert.equal(envelope.src, hub.nodeId)
  assert.equal(envelope.dst, deviceId)
  assert.deepEqual(envelope.body, body)
}

function assertAck (envelope: Envelope, sent: Uint8Array | null, expected: Record<string, unknown>): Record<string, unknown> {
  assert.equal(envelope.type, MessageType.Ack, `expected an Ack, got type ${envelope.type}`)
  const body = envelope.body as Record<string, unknown>
  if (sent) assert.equal(toHex(body.re as Uint8Array), toHex(idOf(sent)), 'the Ack is for the message sent')
  for (const [key, value] of Object.entries(expected)) assert.deepEqual(body[key], value, key)
  return body
}

/** The envelope id (key 2) of an unsigned envelope the helpers built. */
function idOf (envelope: Uint8Array): Uint8Array {
  return (decodeCbor(envelope) as Map<number, unknown>).get(2) as Uint8Array
}

/** Connects the principal's device anew (a fresh CONNECT password, clean session unless told). */
async function reconnect (t: Parameters<typeof connectTestDevice>[0], hub: Hub, principal: TestPrincipal): Promise<{ device: TestDevice, down: Down }> {
  const device = await connectTestDevice(t, hub, principal)
  return { device, down: downStream(device.client) }
}

test('the state flow across HTTP and MQTT with a real mqtt.js device', async t => {
  const hub = await startTestHub(t)
  const { device, down } = await reconnect(t, hub, await enrollPrincipal(hub))
  const id = device.principal.id
  const path = statePath(id)

  // An admin sets desired over HTTP; the device is sent its delta.
  const patched = await call(hub, 'PATCH', path, { body: { desired: { led: 'on', fan: { speed: 2, mode: 'auto' } } } })
  assert.equal(patched.status, 200)
  assertDelta(await down.next(), hub, id, { delta: { led: 'on', fan: { speed: 2, mode: 'auto' } }, version: 1 })

  // The device reports part of it: the Ack's result is the new version, the delta shrinks.
  const report = stateUpdate(device, { led: 'on', fan: { speed: 1, mode: 'auto' }, firmware: '1.2.0' })
  await device.up(report)
  assertAck(await down.next(), report, { ok: true, code: 0, reason: '', result: { version: 2 } })
  const afterReport = (await call(hub, 'GET', path)).body
  assert.equal(afterReport.version, 2)
  assert.deepEqual(afterReport.delta, { fan: { speed: 2 } })
  assert.deepEqual(afterReport.reported, { led: 'on', fan: { speed: 1, mode: 'auto' }, firmware: '1.2.0' })
  assert.equal(typeof afterReport.meta.reported.fan.speed, 'number')

  // StatusSync with an Ack: the whole document is its result, as GET shows it.
  const sync = statusSync(device, 2)
  await device.up(sync)
  assertAck(await down.next(), sync, { ok: true, result: afterReport })

  // StatusSync without an Ack: the current delta comes as a StateUpdate.
  await device.up(statusSync(device, 2, false))
  assertDelta(await down.next(), hub, id, { delta: { fan: { speed: 2 } }, version: 2 })

  // A report that completes desired, with null deleting a reported key.
  const done = stateUpdate(device, { fan: { speed: 2 }, firmware: null })
  await device.up(done)
  assertAck(await down.next(), done, { ok: true, result: { version: 3 } })
  const synced = (await call(hub, 'GET', path)).body
  assert.deepEqual(synced.delta, {})
  assert.deepEqual(synced.reported, { led: 'on', fan: { speed: 2, mode: 'auto' } })

  // No delta was sent after either report: every message so far is accounted for, in order.
  const last = statusSync(device, 3)
  await device.up(last)
  assertAck(await down.next(), last, { ok: true })
  assert.deepEqual(down.envelopes.map(e => e.type), [41, 70, 70, 41, 70, 70])
})

test('a device that was offline gets its pending delta right after it reconnects, and nothing when none is pending', async t => {
  const hub = await startTestHub(t)
  const principal = await enrollPrincipal(hub)
  const first = await reconnect(t, hub, principal)
  await first.device.client.endAsync()

  // Changed twice while it is away: it gets the delta of the latest version only.
  assert.equal((await call(hub, 'PATCH', statePath(principal.id), { body: { desired: { led: 'on', mode: 'eco' } } })).status, 200)
  assert.equal((await call(hub, 'PATCH', statePath(principal.id), { body: { desired: { mode: 'boost' } } })).status, 200)
  assert.equal(first.down.envelopes.length, 0)

  const second = await reconnect(t, hub, principal)
  assertDelta(await second.down.next(), hub, principal.id, { delta: { led: 'on', mode: 'boost' }, version: 2 })
  const report = stateUpdate(second.device, { led: 'on', mode: 'boost' })
  await second.device.up(report)
  assertAck(await second.down.next(), report, { ok: true, result: { version: 3 } })
  await second.device.client.endAsync()

  // In sync now: a reconnect brings no delta, so the first message is the StatusSync's Ack.
  const third = await reconnect(t, hub, principal)
  const sync = statusSync(third.device, 3)
  await third.device.up(sync)
  assertAck(await third.down.next(), sync, { ok: true })
  assert.equal((third.down.envelopes[0].body as { result: { version: number } }).result.version, 3)
})

test('a device with a persistent session gets the pending delta too (possibly twice, identical)', async t => {
  const hub = await startTestHub(t)
  const principal = await enrollPrincipal(hub)
  const options = { clean: false }
  const first = await connectClient(t, mqttUrl(hub), principalOptions(principal, options))
  await first.subscribeAsync(`mn/v1/d/${principal.id}/down`, { qos: 1 })
  await first.endAsync()
  assert.equal((await call(hub, 'PATCH', statePath(principal.id), { body: { desired: { led: 'on' } } })).status, 200)

  // No SUBSCRIBE this time: the session still holds it.
  const client = await connectClient(t, mqttUrl(hub), principalOptions(principal, options))
  const down = downStream(client)
  assertDelta(await down.next(), hub, principal.id, { delta: { led: 'on' }, version: 1 })
  const sync = encodeEnvelope({ type: MessageType.StatusSync, src: principal.id, body: { version: 1 }, ack: true })
  await client.publishAsync(`mn/v1/d/${principal.id}/up`, Buffer.from(sync), { qos: 1 })
  let index = 1
  while ((await down.at(index)).type !== MessageType.Ack) index++
  const deltas = down.envelopes.filter(e => e.type === MessageType.StateUpdate)
  assert.ok(deltas.length >= 1 && deltas.length <= 2, `one or two deltas, got ${deltas.length}`)
  for (const delta of deltas) assert.deepEqual(delta.body, { delta: { led: 'on' }, version: 1 })
})

test('refused reports: values JSON cannot carry and nesting past the cap (103), a document over the cap (102); nothing changes', async t => {
  const hub = await startTestHub(t, { state: { documentBytesMax: 1_024, depthMax: 3 } })
  const { device, down } = await reconnect(t, hub, await enrollPrincipal(hub))
  const path = statePath(device.principal.id)
  const cases: Array<[unknown, number, string]> = [
    [{ blob: new Uint8Array([1, 2]) }, 103, 'state_invalid'],
    [{ n: 2n ** 70n }, 103, 'state_invalid'],
    [{ a: { b: { c: { d: 1 } } } }, 103, 'state_invalid'],
    [{ big: 'x'.repeat(1_100) }, 102, 'state_too_large'],
  ]
  for (const [reported, code, reason] of cases) {
    const sent = stateUpdate(device, reported)
    await device.up(sent)
    const body = assertAck(await down.next(), sent, { ok: false, code, reason })
    assert.equal(body.result, undefined)
  }
  // A body without its §5 shape is the pipeline's refusal, before the state is involved.
  const shapeless = device.envelope({ type: MessageType.StateUpdate, body: { reported: 'on' }, ack: true })
  await device.up(shapeless)
  assertAck(await down.next(), shapeless, { ok: false, code: REJECT_CODES.body, reason: 'body' })
  assert.equal((await call(hub, 'GET', path)).body.version, 0)

  // Within the limits, the same device is served as ever.
  const fine = stateUpdate(device, { a: { b: { c: 1 } }, big: 'x'.repeat(900) })
  await device.up(fine)
  assertAck(await down.next(), fine, { ok: true, result: { version: 1 } })
})

test('a hub that signs its Acks signs its deltas too, with its node key', async t => {
  const hub = await startTestHub(t, { signAcks: true })
  const hubKey = (JSON.parse(readFileSync(join(hub.config.dataDir, 'node-key.json'), 'utf8')) as { publicKey: string }).publicKey
  const { device, down } = await reconnect(t, hub, await enrollPrincipal(hub))
  assert.equal((await call(hub, 'PATCH', statePath(device.principal.id), { body: { desired: { led: 'on' } } })).status, 200)
  assertDelta(await down.next(), hub, device.principal.id, { delta: { led: 'on' }, version: 1 })
  assert.equal(down.items[0].signed, true)
  assert.equal(verifyEnvelope(down.items[0].raw, hubKey, 'down'), true)
})

test('handlers: non-devices are refused with 101; unexpected failures are logged and left to the pipeline (100)', async () => {
  const failing = new Error('disk on fire')
  const calls: string[] = []
  const state = {
    async report (id: string) { calls.push(`report ${id}`); throw failing },
    async get (id: string) { calls.push(`get ${id}`); return { version: 0 } },
    async sendDelta (id: string) { calls.push(`sendDelta ${id}`); return false },
  } as unknown as StateService
  const logged: unknown[] = []
  const log = pino({ level: 'error' }, { write: (line: string) => { logged.push(JSON.parse(line)) } })
  const mqtt = createStateMqtt({ state, log })
  const id = 'ab'.repeat(16)
  const message = (role: 'device' | 'service', type: number, body: unknown, ack = true): AcceptedMessage => ({
    principal: { id, role, revoked: false } as AcceptedMessage['principal'],
    envelope: { v: 1, type, id: new Uint8Array(16), src: id, ts: Date.now(), prio: 2, body, enc: 0, ack },
    raw: new Uint8Array(0),
    signed: false,
    receivedAt: Date.now(),
  })
  const stateUpdate = mqtt.handlers.get(MessageType.StateUpdate)!
  const statusSync = mqtt.handlers.get(MessageType.StatusSync)!
  await assert.rejects(async () => stateUpdate(message('service', MessageType.StateUpdate, { reported: {} })), (err: unknown) => {
    assert.ok(err instanceof FeatureRejection)
    assert.equal(err.code, 101)
    assert.equal(err.reason, 'not_a_device')
    return true
  })
  await assert.rejects(async () => statusSync(message('service', MessageType.StatusSync, { version: 0 })), FeatureRejection)
  assert.deepEqual(calls, [], 'a non-device never reaches the service')
  await assert.rejects(async () => stateUpdate(message('device', MessageType.StateUpdate, { reported: {} })), (err: unknown) => err === failing)
  assert.equal(logged.length, 1)
  assert.equal((logged[0] as { msg: string }).msg, 'state message failed')
  assert.deepEqual(await statusSync(message('device', MessageType.StatusSync, { version: 0 })), { version: 0 })
  assert.equal(await statusSync(message('device', MessageType.StatusSync, { version: 0 }, false)), undefined)
  assert.deepEqual(calls.slice(1), [`get ${id}`, `sendDelta ${id}`])
})

test('hooks: the pending delta goes to a device whose session is ready or that subscribed to its own down topic, to no one else', () => {
  const sent: string[] = []
  const state = { async sendDelta (id: string) { sent.push(id); return true } } as unknown as StateService
  const mqtt = createStateMqtt({ state, log: pino({ level: 'silent' }) })
  const device = 'cd'.repeat(16)
  const other = 'ef'.repeat(16)
  mqtt.onPrincipalReady({ id: device, role: 'device' })
  mqtt.onPrincipalReady({ id: other, role: 'service' })
  mqtt.onSubscribed(device, [{ topic: `mn/v1/d/${device}/down`, qos: 1 }])
  mqtt.onSubscribed(device, [{ topic: `mn/v1/d/${device}/down`, qos: 128 }])
  mqtt.onSubscribed(device, [{ topic: `mn/v1/d/${other}/down`, qos: 1 }])
  mqtt.onSubscribed(device, [{ topic: `mn/v1/d/${device}/up`, qos: 1 }])
  mqtt.onSubscribed('anonymous-client', [{ topic: 'mn/v1/d/anonymous-client/down', qos: 0 }, { topic: '#', qos: 0 }])
  assert.deepEqual(sent, [device, device])
})
