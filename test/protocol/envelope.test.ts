/**
 * encodeEnvelope and the per-envelope steps of parsePayload (decode, version, type), on
 * hand-made bytes.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import {
  checkEnvelope, encodeEnvelope, MessageType, parsePayload, type ParsedItem,
} from '../../src/protocol/index.js'
import { deflateRaw } from '../../src/protocol/compression.js'
import { DEVICE_ID, HUB_ID, MAX, SKEW_MS, T0, c, envelopeBytes, envelopePairs, hex, seq16, strictDecode } from './helpers.js'

function parseOne (bytes: Uint8Array, direction: 'up' | 'down' = 'up'): ParsedItem {
  const result = parsePayload(bytes, { payloadBytesMax: MAX, direction })
  assert.ok(result.ok, `expected the payload to split, got ${JSON.stringify(result)}`)
  assert.equal(result.items.length, 1)
  return result.items[0]
}

function rejected (bytes: Uint8Array, reason: string, detail?: RegExp, direction: 'up' | 'down' = 'up'): ParsedItem {
  const item = parseOne(bytes, direction)
  assert.equal(item.reason, reason, `detail: ${item.detail}`)
  if (detail) assert.match(item.detail ?? '', detail)
  return item
}

test('round trip: every field comes back as written', () => {
  const body = { temp: 21.5, rssi: -67, tags: ['a', 'b'], raw: Uint8Array.of(1, 2, 3), nested: { deep: [1, { x: null }] } }
  const bytes = encodeEnvelope({ type: MessageType.StatusUpdate, src: DEVICE_ID, dst: HUB_ID, id: seq16(0xa0), ts: T0, prio: 3, body, ack: true })
  const item = parseOne(bytes)
  assert.equal(item.reason, undefined)
  assert.equal(item.signed, false)
  assert.deepEqual(item.raw, bytes)
  assert.deepEqual(item.envelope, { v: 1, type: 1, id: seq16(0xa0), src: DEVICE_ID, dst: HUB_ID, ts: T0, prio: 3, enc: 0, ack: true, body })
  assert.deepEqual(item.ackRe, seq16(0xa0))
})

test('defaults: random id, ts now, prio 2 when absent, no body, no ack', () => {
  const before = Date.now()
  const a = parseOne(encodeEnvelope({ type: MessageType.Heartbeat, src: DEVICE_ID })).envelope
  const b = parseOne(encodeEnvelope({ type: MessageType.Heartbeat, src: DEVICE_ID })).envelope
  assert.ok(a && b)
  assert.notDeepEqual(a.id, b.id)
  assert.ok(a.ts >= before && a.ts <= Date.now())
  assert.equal(a.prio, 2)
  assert.equal(a.body, undefined)
  assert.equal(a.ack, false)
  assert.equal(a.enc, 0)
})

test('compressed bodies round trip with enc 1', () => {
  const body = { log: 'line\n'.repeat(2000) }
  const bytes = encodeEnvelope({ type: MessageType.StatusUpdate, src: DEVICE_ID, body, compress: true })
  assert.ok(bytes.length < 500)
  const item = parseOne(bytes)
  assert.equal(item.envelope?.enc, 1)
  assert.deepEqual(item.envelope?.body, body)
})

test('encodeEnvelope refuses caller bugs with TypeErrors that say what they got', () => {
  const ok = { type: MessageType.StatusUpdate, src: DEVICE_ID }
  assert.throws(() => encodeEnvelope({ ...ok, id: new Uint8Array(15) }), /id expected Uint8Array of length 16, got length=15/)
  assert.throws(() => encodeEnvelope({ ...ok, type: 99 }), /type expected a message type code/)
  assert.throws(() => encodeEnvelope({ ...ok, src: 'ABC' }), /src expected a principal id/)
  assert.throws(() => encodeEnvelope({ ...ok, ts: 1.5 }), /ts expected a non-negative integer/)
  assert.throws(() => encodeEnvelope({ ...ok, prio: 4 }), /prio expected an integer from 0 to 3/)
  assert.throws(() => encodeEnvelope({ ...ok, compress: true }), /compress expected a body/)
  assert.throws(() => encodeEnvelope({ ...ok, body: { when: new Date() } }), /body\.when is a Date/)
  assert.throws(() => encodeEnvelope({ ...ok, extra: 1 } as never), /unknown key "extra"/)
  let deep: unknown = 1
  for (let i = 0; i < 25; i++) deep = [deep]
  assert.throws(() => encodeEnvelope({ ...ok, body: deep }), /body(\[0\])+ nests deeper than 24/)
})

test('what encodeEnvelope writes, cborg reads strictly, and ts is an integer', () => {
  const bytes = encodeEnvelope({ type: MessageType.StatusUpdate, src: DEVICE_ID, id: seq16(0), ts: T0, body: { n: 2 ** 40 }, ack: true })
  const map = strictDecode(bytes) as Map<number, unknown>
  assert.equal(map.get(5), T0)
  assert.ok(hex(bytes).includes('051b0000019b76daa800'))
  const compressed = encodeEnvelope({ type: MessageType.StatusUpdate, src: DEVICE_ID, body: { a: 1 }, compress: true })
  assert.equal((strictDecode(compressed) as Map<number, unknown>).get(9), 1)
})

test('integers of every width are accepted, keys included', () => {
  for (const width of [0, 1, 2, 4, 8] as const) {
    const pairs = envelopePairs({
      0: c.uint(1, width), 1: c.uint(1, width), 6: c.uint(3, width), 9: c.uint(0, width),
    }).map(([key, value]): [Uint8Array, Uint8Array] => [c.uint(key[0], width), value])
    const item = parseOne(c.map(...pairs))
    assert.equal(item.reason, undefined, `width ${width}: ${item.detail}`)
    assert.equal(item.envelope?.prio, 3)
  }
  for (const width of [4, 8] as const) assert.equal(parseOne(envelopeBytes({ 5: c.uint(T0 % 2 ** 32, width) })).envelope?.ts, T0 % 2 ** 32)
})

test('indefinite-length maps and strings are accepted', () => {
  const item = parseOne(c.mapIndef(...envelopePairs({
    2: c.chunked(2, c.bstr(seq16(0xa0).subarray(0, 5)), c.bstr(seq16(0xa0).subarray(5))),
    3: c.chunked(3, c.tstr(DEVICE_ID.slice(0, 10)), c.tstr(DEVICE_ID.slice(10))),
    7: c.mapIndef([c.chunked(3, c.tstr('te'), c.tstr('mp')), c.uint(21)]),
  })))
  assert.equal(item.reason, undefined, item.detail)
  assert.deepEqual(item.envelope?.id, seq16(0xa0))
  assert.equal(item.envelope?.src, DEVICE_ID)
  assert.deepEqual(item.envelope?.body, { temp: 21 })
})

test('unknown integer keys are ignored, whatever their value', () => {
  const item = parseOne(c.map(...envelopePairs(), [c.uint(8), c.tstr('future')], [c.nint(-1), c.array()], [c.uint(2n ** 63n), c.null()]))
  assert.equal(item.reason, undefined, item.detail)
})

test('decode: every field rule of §4', () => {
  const cases: Array<[Record<number, Uint8Array | null>, RegExp]> = [
    [{ 5: c.f64(T0) }, /ts is a float/],
    [{ 1: c.f64(1) }, /type is a float/],
    [{ 6: c.f64(2) }, /prio is a float/],
    [{ 0: c.f16one() }, /v is a float/],
    [{ 5: c.nint(-5) }, /ts is CBOR major type 1/],
    [{ 5: c.tstr('1767225600000') }, /ts is CBOR major type 3/],
    [{ 2: c.bstr(new Uint8Array(15)) }, /id is 15 bytes, expected 16/],
    [{ 2: c.bstr(new Uint8Array(17)) }, /id is 17 bytes/],
    [{ 2: c.tstr('a0a1a2a3a4a5a6a7a8a9aaabacadaeaf') }, /id is CBOR major type 3/],
    [{ 3: c.bstr(new TextEncoder().encode(DEVICE_ID)) }, /src is CBOR major type 2/],
    [{ 4: c.uint(1) }, /dst is CBOR major type 0/],
    [{ 6: c.uint(4) }, /prio 4 is outside 0-3/],
    [{ 6: c.uint(2n ** 64n - 1n) }, /prio .* is outside 0-3/],
    [{ 9: c.uint(2) }, /enc 2 is outside 0-1/],
    [{ 13: c.uint(1) }, /ack is CBOR major type 0, expected a boolean/],
    [{ 13: c.null() }, /ack is CBOR major type 7, expected a boolean/],
    [{ 0: null }, /lacks key 0/],
    [{ 1: null }, /lacks key 1/],
    [{ 2: null }, /lacks key 2/],
    [{ 3: null }, /lacks key 3/],
    [{ 5: null }, /lacks key 5/],
    [{ 7: c.tag(1, c.uint(0)) }, /tag 1 is not allowed/],
    [{ 7: c.map([c.tstr('x'), c.undefined()]) }, /undefined is not allowed/],
    [{ 7: c.map([c.tstr('a'), c.uint(1)], [c.tstr('a'), c.uint(2)]) }, /duplicate map key/],
    [{ 7: c.tstr('bad \u00e9').map((b, i, all) => i === all.length - 1 ? 0xff : b) }, /not valid UTF-8/],
    [{ 9: c.uint(1) }, /body \(enc 1\) is CBOR major type 5, expected a byte string/],
    [{ 9: c.uint(1), 7: null }, /enc is 1 but there is no body/],
    [{ 9: c.uint(1), 7: c.bstr(Uint8Array.of(0xff, 0xff, 0xff)) }, /not valid raw DEFLATE/],
    [{ 9: c.uint(1), 7: c.bstr(deflateRaw(Uint8Array.of(0xf7))) }, /inflated body: undefined is not allowed/],
    [{ 9: c.uint(1), 7: c.bstr(deflateRaw(Uint8Array.of(0x01, 0x02))) }, /inflated body: 1 bytes after the item/],
  ]
  for (const [overrides, detail] of cases) rejected(envelopeBytes(overrides), 'decode', detail)
  let deep = c.uint(0)
  for (let i = 0; i < 25; i++) deep = c.array(deep)
  rejected(envelopeBytes({ 7: deep }), 'decode', /nesting deeper than 24/)
})

test('decode: keys must be integers, each once', () => {
  rejected(c.map(...envelopePairs(), [c.tstr('x'), c.uint(1)]), 'decode', /envelope key of CBOR major type 3/)
  rejected(c.map(...envelopePairs(), [c.f64(8), c.uint(1)]), 'decode', /envelope key of CBOR major type 7/)
  rejected(c.map(...envelopePairs(), [c.uint(5, 1), c.uint(T0)]), 'decode', /key 5 appears twice/)
  rejected(c.mapIndef(...envelopePairs(), [c.uint(1, 8), c.uint(1)]), 'decode', /key 1 appears twice/)
})

test('decode: the envelope must be a map', () => {
  const result = parsePayload(c.tstr('hello'), { payloadBytesMax: MAX, direction: 'up' })
  assert.deepEqual({ ok: result.ok, reason: !result.ok && result.reason }, { ok: false, reason: 'decode' })
})

test('a decode rejection still carries the id to acknowledge when it was readable and asked for', () => {
  const asked = rejected(envelopeBytes({ 5: c.f64(T0), 13: c.true() }), 'decode')
  assert.deepEqual(asked.ackRe, seq16(0xa0))
  assert.equal(asked.envelope, undefined)
  assert.equal(rejected(envelopeBytes({ 5: c.f64(T0) }), 'decode').ackRe, undefined)
  assert.equal(rejected(envelopeBytes({ 2: c.bstr(new Uint8Array(15)), 13: c.true() }), 'decode').ackRe, undefined)
  assert.equal(rejected(c.map(...envelopePairs({ 13: c.true() }), [c.uint(13, 2), c.true()]), 'decode').ackRe, undefined)
})

test('version: anything but 1, after decode', () => {
  const item = rejected(envelopeBytes({ 0: c.uint(2), 13: c.true() }), 'version')
  assert.equal(item.envelope?.v, 2)
  assert.deepEqual(item.ackRe, seq16(0xa0))
  rejected(envelopeBytes({ 0: c.uint(0) }), 'version')
  rejected(envelopeBytes({ 0: c.uint(2n ** 64n - 1n) }), 'version')
  // The spec's order: decode comes first, so a v2 envelope lacking ts is a decode.
  rejected(envelopeBytes({ 0: c.uint(2), 5: null }), 'decode')
})

test('type: unknown codes, and codes not allowed in that direction', () => {
  rejected(envelopeBytes({ 1: c.uint(99) }), 'type', /unknown or not allowed/)
  rejected(envelopeBytes({ 1: c.uint(2n ** 64n - 1n) }), 'type')
  rejected(envelopeBytes({ 1: c.uint(MessageType.Ack) }), 'type') // an Ack sent up
  rejected(envelopeBytes({ 1: c.uint(MessageType.ConfigurationUpdate) }), 'type')
  rejected(envelopeBytes({ 1: c.uint(MessageType.ConsensusVote) }), 'type')
  rejected(envelopeBytes({ 1: c.uint(MessageType.StatusUpdate) }), 'type', undefined, 'down')
  assert.equal(parseOne(envelopeBytes({ 1: c.uint(MessageType.Ack) }), 'down').reason, undefined)
  // version is checked before type
  rejected(envelopeBytes({ 0: c.uint(3), 1: c.uint(99) }), 'version')
})

test('a ts beyond 2^53 is read, and fails the skew check', () => {
  const item = parseOne(envelopeBytes({ 5: c.uint(2n ** 64n - 1n) }))
  assert.equal(item.reason, undefined)
  assert.equal(checkEnvelope(item, { principalId: DEVICE_ID, nowMs: T0, skewMs: SKEW_MS }), 'skew')
})
