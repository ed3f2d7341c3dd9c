import { test } from 'node:test'
import assert from 'node:assert/strict'
import {
  ackBody, checkEnvelope, decodeBridgeRecord, encodeAck, encodeBridgeRecord, encodeEnvelope, idBytes, MessageType,
  parsePayload, ProtocolError, validateBody,
} from '../../src/protocol/index.js'
import { Cose18, DEVICE_ID, HUB_ID, HUB_PUBLIC, HUB_SECRET, MAX, SKEW_MS, T0, c, nobleSigner, nodeVerifyRaw, seq16, strictDecode } from './helpers.js'

function readDown (bytes: Uint8Array) {
  const result = parsePayload(bytes, { payloadBytesMax: MAX, direction: 'down' })
  assert.ok(result.ok)
  return result.items[0]
}

test('ackBody: success, a §5 reason, a feature reason', () => {
  assert.deepEqual(ackBody(seq16(0)), { re: seq16(0), ok: true, code: 0, reason: '' })
  assert.deepEqual(ackBody(seq16(0), 'replay'), { re: seq16(0), ok: false, code: 6, reason: 'replay' })
  assert.deepEqual(ackBody(seq16(0), { code: 101, reason: 'claim_spent' }, { n: 1 }), { re: seq16(0), ok: false, code: 101, reason: 'claim_spent', result: { n: 1 } })
  assert.throws(() => ackBody(seq16(0), { code: 7, reason: 'mine' }), /reason.code expected an integer of at least 100/)
  assert.throws(() => ackBody(seq16(0), 'nope' as never), /reason expected a RejectReason/)
  assert.throws(() => ackBody(new Uint8Array(15)), /re expected Uint8Array of length 16, got length=15/)
})

test('encodeAck: type 70 from the hub to the device, a body of the §5 shape, read by any decoder', () => {
  const bytes = encodeAck({ re: seq16(0xa0), hubId: HUB_ID, dst: DEVICE_ID, id: seq16(0xe0), ts: T0 })
  const item = readDown(bytes)
  assert.equal(item.reason, undefined)
  assert.equal(item.envelope?.type, MessageType.Ack)
  assert.equal(item.envelope?.src, HUB_ID)
  assert.equal(item.envelope?.dst, DEVICE_ID)
  assert.deepEqual(item.envelope?.body, { re: seq16(0xa0), ok: true, code: 0, reason: '' })
  assert.ok(validateBody(MessageType.Ack, item.envelope?.body, 'down'))
  const map = strictDecode(bytes) as Map<number, unknown>
  assert.deepEqual(map.get(7), new Map<string, unknown>([['re', seq16(0xa0)], ['ok', true], ['code', 0], ['reason', '']]))
})

test('encodeAck takes code/reason as the hub computes them, and checks they agree', () => {
  const base = { re: seq16(0), hubId: HUB_ID, dst: DEVICE_ID }
  const body = (bytes: Uint8Array) => readDown(bytes).envelope?.body
  assert.deepEqual(body(encodeAck({ ...base, code: 0, reason: '' })), { re: seq16(0), ok: true, code: 0, reason: '' })
  assert.deepEqual(body(encodeAck({ ...base, code: 5, reason: 'skew' })), { re: seq16(0), ok: false, code: 5, reason: 'skew' })
  assert.deepEqual(body(encodeAck({ ...base, code: 100, reason: 'internal' })), { re: seq16(0), ok: false, code: 100, reason: 'internal' })
  assert.deepEqual(body(encodeAck({ ...base, reason: 'body', ok: false })), { re: seq16(0), ok: false, code: 10, reason: 'body' })
  assert.deepEqual(body(encodeAck({ ...base, result: { version: 3 } })), { re: seq16(0), ok: true, code: 0, reason: '', result: { version: 3 } })
  assert.throws(() => encodeAck({ ...base, code: 4, reason: 'skew' }), /code 4 disagrees with reason "skew"/)
  assert.throws(() => encodeAck({ ...base, code: 3 }), /code 3 disagrees/)
  assert.throws(() => encodeAck({ ...base, ok: false }), /ok false disagrees/)
  assert.throws(() => encodeAck({ ...base, reason: 'internal' }), /give its feature code/)
  assert.throws(() => encodeAck({ ...base, code: 12, reason: 'internal' }), /at least 100/)
})

test('a signed Ack is a COSE_Sign1 by the hub that the device can check and verify', () => {
  const bytes = encodeAck({ re: seq16(0), hubId: HUB_ID, dst: DEVICE_ID, reason: 'replay', sign: nobleSigner(HUB_SECRET), ts: T0 })
  assert.ok(strictDecode(bytes) instanceof Cose18)
  const item = readDown(bytes)
  assert.equal(checkEnvelope(item, { principalId: HUB_ID, nowMs: T0, skewMs: SKEW_MS }), null)
  assert.deepEqual(item.cose?.kid, idBytes(HUB_ID))
  assert.ok(item.cose && nodeVerifyRaw(HUB_PUBLIC, item.cose.sigInput, item.cose.signature))
})

test('bridge record: the keys of §6, no key 9, raw exactly as received', () => {
  const raw = encodeEnvelope({ type: MessageType.StatusUpdate, src: DEVICE_ID, body: { z: 1 }, compress: true })
  const parsed = parsePayload(raw, { payloadBytesMax: MAX, direction: 'up' })
  assert.ok(parsed.ok)
  const envelope = parsed.items[0].envelope
  assert.ok(envelope)
  const bytes = encodeBridgeRecord({ type: envelope.type, src: DEVICE_ID, receivedAt: T0 + 5, body: envelope.body, hubId: HUB_ID, signed: false, raw: parsed.items[0].raw })
  const map = strictDecode(bytes) as Map<number, unknown>
  assert.deepEqual([...map.keys()], [0, 1, 3, 5, 7, 10, 11, 12])
  assert.equal(map.get(5), T0 + 5)
  assert.deepEqual(map.get(7), new Map([['z', 1]]))
  assert.deepEqual(map.get(12), raw)
  assert.deepEqual(decodeBridgeRecord(bytes), { type: 1, src: DEVICE_ID, receivedAt: T0 + 5, body: { z: 1 }, hubId: HUB_ID, signed: false, raw })
  // A body-less message has no key 7.
  const none = encodeBridgeRecord({ type: MessageType.Heartbeat, src: DEVICE_ID, receivedAt: T0, hubId: HUB_ID, signed: true, raw })
  assert.equal((strictDecode(none) as Map<number, unknown>).has(7), false)
  assert.equal(decodeBridgeRecord(none).body, undefined)
})

test('decodeBridgeRecord throws ProtocolError for what is not a record', () => {
  const good = (overrides: Record<number, Uint8Array | null>): Uint8Array => {
    const fields: Record<number, Uint8Array | null> = {
      0: c.uint(1), 1: c.uint(1), 3: c.tstr(DEVICE_ID), 5: c.uint(T0), 10: c.tstr(HUB_ID), 11: c.false(), 12: c.bstr(Uint8Array.of(0xa0)), ...overrides,
    }
    return c.map(...Object.entries(fields).filter(([, v]) => v !== null).map(([k, v]): [Uint8Array, Uint8Array] => [c.uint(Number(k)), v as Uint8Array]))
  }
  assert.equal(decodeBridgeRecord(good({})).type, 1)
  const bad: Array<[Uint8Array, string]> = [
    [good({ 12: null }), 'decode'], [good({ 5: c.f64(T0) }), 'decode'], [good({ 11: c.uint(1) }), 'decode'],
    [good({ 7: c.tag(1, c.uint(0)) }), 'decode'], [good({ 0: c.uint(2) }), 'version'], [c.array(), 'decode'], [Uint8Array.of(0xa1), 'decode'],
  ]
  for (const [bytes, reason] of bad) assert.throws(() => decodeBridgeRecord(bytes), (err: unknown) => err instanceof ProtocolError && err.reason === reason)
})

test('encodeBridgeRecord refuses caller bugs', () => {
  const ok = { type: 1, src: DEVICE_ID, receivedAt: T0, hubId: HUB_ID, signed: false, raw: Uint8Array.of(0xa0) }
  assert.throws(() => encodeBridgeRecord({ ...ok, type: 99 }), /type expected a message type code/)
  assert.throws(() => encodeBridgeRecord({ ...ok, receivedAt: 1.5 }), /receivedAt expected a non-negative integer/)
  assert.throws(() => encodeBridgeRecord({ ...ok, signed: 1 as never }), /signed expected a boolean/)
  assert.throws(() => encodeBridgeRecord({ ...ok, raw: 'x' as never }), /raw expected Uint8Array/)
})
