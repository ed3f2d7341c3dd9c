/**
 * The hot path's shortcuts must not change a byte of what the hub publishes:
 * ParsedItem.bodyBytes is offered only when the body's bytes are exactly what encodeCbor
 * writes for the decoded body, so a bridge record spliced from them is the record the body
 * re-encoded gives; everything else falls back to re-encoding. Also: the views parsePayload
 * hands out, and the short-text cache.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import {
  decodeBridgeRecord, decodeCbor, encodeBridgeRecord, encodeCbor, encodeEnvelope, MessageType, parsePayload, readHead, type ParsedItem,
} from '../../src/protocol/index.js'
import { asciiOrUtf8Text, toHex } from '../../src/protocol/bytes.js'
import { walkWholeSplit } from '../../src/protocol/cbor-scan.js'
import { deflateRaw } from '../../src/protocol/compression.js'
import { DEVICE_ID, HUB_ID, MAX, T0, c, envelopeBytes, seq16, unhex } from './helpers.js'

function parseOne (bytes: Uint8Array): ParsedItem {
  const result = parsePayload(bytes, { payloadBytesMax: 4 * MAX, direction: 'up' })
  assert.ok(result.ok)
  assert.equal(result.items.length, 1)
  const item = result.items[0]
  assert.equal(item.reason, undefined, item.detail)
  return item
}

/** The record as the hub builds it (spliced when it can) and as the body re-encoded gives it. */
function records (item: ParsedItem): { spliced: Uint8Array, reencoded: Uint8Array } {
  const envelope = item.envelope
  assert.ok(envelope)
  const base = { type: envelope.type, src: DEVICE_ID, receivedAt: T0 + 250, body: envelope.body, hubId: HUB_ID, signed: false, raw: item.raw }
  return { spliced: encodeBridgeRecord({ ...base, bodyBytes: item.bodyBytes }), reencoded: encodeBridgeRecord(base) }
}

const spliceable: Array<[string, unknown]> = [
  ['telemetry', { t: T0 + 0.5, temp: 21.5, hum: 40.25, battery: 87, rssi: -61, pad: 'xxxx' }],
  ['integers of every width', { a: 0, b: 23, c: 24, d: 255, e: 256, f: 65535, g: 65536, h: 2 ** 32 - 1, i: 2 ** 32, j: 2 ** 53 - 1, k: T0 }],
  ['negative integers', [-1, -24, -25, -256, -257, -65536, -65537, -(2 ** 31), -(2 ** 32), -(2 ** 32) - 1, -(2 ** 53) + 1]],
  ['bigints within 64 bits', [2n ** 53n, 2n ** 63n, 2n ** 64n - 1n, -(2n ** 63n), -(2n ** 64n) + 1n]],
  ['floats', [0.5, -2.25, 1e300, 2 ** 60, -(2 ** 70), Infinity, -Infinity, 1767225600000.5]],
  ['strings around head sizes', ['', 'x'.repeat(23), 'x'.repeat(24), 'x'.repeat(255), 'x'.repeat(256), 'ü'.repeat(12), 'ü'.repeat(13), '✓𝄞']],
  ['a long string', 'y'.repeat(70_000)],
  ['bytes', [new Uint8Array(0), seq16(0), new Uint8Array(300)]],
  ['nesting', { a: [1, { b: [null, true, false, { c: 'd' }] }], e: {} }],
  ['maps with other keys', new Map<unknown, unknown>([[1, 'one'], [-1, 'minus'], ['k', 2], [true, null], [Uint8Array.of(1), 3]])],
  ['a big map', Object.fromEntries(Array.from({ length: 300 }, (_, i) => [`k${i}`, i]))],
  ['a big array', Array.from({ length: 70_000 }, (_, i) => i % 3)],
  ['scalars', 7],
  ['null', null],
]

test('bodies encodeCbor writes are spliced, and the record is the re-encoded one byte for byte', () => {
  for (const [name, body] of spliceable) {
    const item = parseOne(encodeEnvelope({ type: MessageType.StatusUpdate, src: DEVICE_ID, id: seq16(0xa0), ts: T0, body }))
    assert.ok(item.bodyBytes, `${name}: expected bodyBytes`)
    assert.deepEqual(item.bodyBytes, encodeCbor(body), name)
    const { spliced, reencoded } = records(item)
    assert.deepEqual(spliced, reencoded, name)
    assert.deepEqual(decodeBridgeRecord(spliced).body, item.envelope?.body, name)
  }
})

test('bodyBytes is a view into the payload, not a copy, and so are raw and the id', () => {
  const payload = encodeEnvelope({ type: MessageType.StatusUpdate, src: DEVICE_ID, id: seq16(0xa0), ts: T0, body: { n: 1 }, ack: true })
  const item = parseOne(payload)
  for (const part of [item.bodyBytes, item.raw, item.envelope?.id, item.ackRe]) {
    assert.ok(part)
    assert.equal(part.buffer, payload.buffer)
    assert.equal(part.constructor, Uint8Array)
  }
})

// Bytes a device may send whose re-encoding differs: the record must then be the re-encoded
// one (as it always was), so no bodyBytes.
const notSpliceable: Array<[string, Uint8Array]> = [
  ['a long integer head', c.map([c.tstr('n'), c.uint(5, 2)])],
  ['a long string head', c.map([c.tstr('n'), unhex('7801 61')])],
  ['a long map head', unhex('b80161 6101')],
  ['a long array head', unhex('9801 01')],
  ['a long key head', c.map([unhex('7801 61'), c.uint(1)])],
  ['an 8-byte integer below 2^32', c.map([c.tstr('n'), c.uint(7, 8)])],
  ['-(2^64), which encodeCbor writes as a bignum', c.map([c.tstr('n'), c.nint(-(2n ** 64n))])],
  ['a bignum tag', c.map([c.tstr('n'), c.tag(2, c.bstr(Uint8Array.of(1, 0)))])],
  ['a half float', c.map([c.tstr('n'), c.f16one()])],
  ['a single float', c.map([c.tstr('n'), unhex('fa3fc00000')])],
  ['a float64 holding an integer', c.map([c.tstr('n'), c.f64(2)])],
  ['a float64 holding -0', c.map([c.tstr('n'), c.f64(-0)])],
  ['a float64 NaN', c.map([c.tstr('n'), unhex('fb7ff8000000000001')])],
  ['an indefinite-length map', c.mapIndef([c.tstr('n'), c.uint(1)])],
  ['an indefinite-length array', c.map([c.tstr('n'), c.arrayIndef(c.uint(1))])],
  ['a chunked string', c.map([c.tstr('n'), c.chunked(3, c.tstr('a'), c.tstr('b'))])],
  ['a digit-only key (an object lists it first)', c.map([c.tstr('b'), c.uint(1)], [c.tstr('1'), c.uint(2)])],
  ['a "__proto__" key', c.map([c.tstr('__proto__'), c.uint(1)])],
  ['an array as a key', c.map([c.array(c.uint(1)), c.uint(1)])],
]

test('bodies that re-encode differently are not spliced; their record is the re-encoded one', () => {
  for (const [name, body] of notSpliceable) {
    const item = parseOne(envelopeBytes({ 7: body }))
    assert.equal(item.bodyBytes, undefined, name)
    const { spliced, reencoded } = records(item)
    assert.deepEqual(spliced, reencoded, name)
    assert.deepEqual(spliced.subarray(0, 1), Uint8Array.of(0xa8), name)
    // What the record carries is the body re-encoded (not the bytes received).
    assert.ok(toHex(spliced).includes(toHex(encodeCbor(decodeCbor(body, 24)))), name)
  }
})

test('a compressed body is spliced from its inflated bytes when they are plain', () => {
  const body = { log: 'door opened; '.repeat(20) }
  const item = parseOne(encodeEnvelope({ type: MessageType.StatusUpdate, src: DEVICE_ID, ts: T0, body, compress: true }))
  assert.deepEqual(item.bodyBytes, encodeCbor(body))
  const { spliced, reencoded } = records(item)
  assert.deepEqual(spliced, reencoded)
  const odd = parseOne(envelopeBytes({ 9: c.uint(1), 7: c.bstr(deflateRaw(c.mapIndef([c.tstr('a'), c.uint(1)]))) }))
  assert.equal(odd.bodyBytes, undefined)
  assert.deepEqual(odd.envelope?.body, { a: 1 })
})

test('no body, no bodyBytes; a rejected item has none either', () => {
  const none = parseOne(encodeEnvelope({ type: MessageType.Heartbeat, src: DEVICE_ID, ts: T0 }))
  assert.equal(none.bodyBytes, undefined)
  const result = parsePayload(envelopeBytes({ 5: c.f64(T0) }), { payloadBytesMax: MAX, direction: 'up' })
  assert.ok(result.ok && result.items[0].reason === 'decode' && result.items[0].bodyBytes === undefined)
})

test('encodeBridgeRecord: allocate gives the memory, filled whole; bodyBytes wins over body', () => {
  const item = parseOne(encodeEnvelope({ type: MessageType.StatusUpdate, src: DEVICE_ID, ts: T0, body: { z: 1 } }))
  const input = { type: 1, src: DEVICE_ID, receivedAt: 2 ** 40, body: item.envelope?.body, bodyBytes: item.bodyBytes, hubId: HUB_ID, signed: true, raw: item.raw }
  const plain = encodeBridgeRecord(input)
  const dirty = (length: number): Uint8Array => new Uint8Array(length).fill(0xee)
  assert.deepEqual(encodeBridgeRecord(input, dirty), plain)
  assert.deepEqual(new Uint8Array(encodeBridgeRecord(input, Buffer.allocUnsafe)), plain)
  assert.deepEqual(encodeBridgeRecord({ ...input, body: 'ignored' }), plain)
  assert.equal(decodeBridgeRecord(plain).receivedAt, 2 ** 40)
  assert.throws(() => encodeBridgeRecord(input, (length) => new Uint8Array(length + 1)), /allocate expected to return a Uint8Array of length/)
  assert.throws(() => encodeBridgeRecord(input, 5 as never), /allocate expected a function/)
  assert.throws(() => encodeBridgeRecord({ ...input, bodyBytes: new Uint8Array(0) }), /bodyBytes expected the CBOR of one item/)
  assert.throws(() => encodeBridgeRecord({ ...input, bodyBytes: [1] as never }), /bodyBytes expected Uint8Array/)
})

test('walkWholeSplit finds the items of a batch in the same walk', () => {
  const spans: number[] = []
  const batch = c.arrayIndef(c.uint(1), c.tstr('ab'), c.map([c.uint(1), c.array()]))
  walkWholeSplit(batch, batch.length, { strict: false, depthMax: 32 }, spans)
  assert.deepEqual(spans, [1, 2, 2, 5, 5, 8])
  walkWholeSplit(c.map(), 1, { strict: false, depthMax: 32 }, spans)
  assert.deepEqual(spans, [])
})

test('readHead still gives a float64\'s bits as its value', () => {
  assert.equal(readHead(c.f64(1.5), 0, 9).value, 0x3ff8_0000_0000_0000n)
  const tiny = unhex('fb 00 00 04 00 00 00 00 07') // a subnormal: its bits are a safe integer
  assert.equal(readHead(tiny, 0, 9).value, 0x400 * 2 ** 32 + 7)
})

test('short texts are cached by content, never confused', () => {
  const encoder = new TextEncoder()
  const seen = new Map<string, string>()
  for (let i = 0; i < 5000; i++) {
    const text = i % 7 === 0 ? `ü${i}` : (i * 2654435761 % 4099).toString(36).repeat(1 + (i % 5))
    const bytes = encoder.encode(`[${text}]`)
    const read = asciiOrUtf8Text(bytes, 1, bytes.length - 1)
    assert.equal(read, text)
    seen.set(text, read)
  }
  const long = 'z'.repeat(500)
  assert.equal(asciiOrUtf8Text(encoder.encode(long), 0, 500), long)
  assert.equal(asciiOrUtf8Text(new Uint8Array(0), 0, 0), '')
})

test('duplicate keys are found in maps of any size, whatever their encoding', () => {
  const big = (extra: Array<[Uint8Array, Uint8Array]>): Uint8Array =>
    c.map(...Array.from({ length: 20 }, (_, i): [Uint8Array, Uint8Array] => [c.tstr(`k${i}`), c.uint(i)]), ...extra)
  assert.doesNotThrow(() => decodeCbor(big([])))
  assert.throws(() => decodeCbor(big([[c.tstr('k3'), c.uint(0)]])), /duplicate map key/)
  assert.throws(() => decodeCbor(big([[c.chunked(3, c.tstr('k'), c.tstr('19')), c.uint(0)]])), /duplicate map key/)
  const small = c.map([c.uint(1), c.uint(0)], [c.tstr('k'), c.uint(0)], [c.uint(1, 4), c.uint(0)])
  assert.throws(() => decodeCbor(small), /duplicate map key/)
  // Same length, same first and last byte, different middle: not duplicates.
  assert.doesNotThrow(() => decodeCbor(c.map([c.tstr('abc'), c.uint(0)], [c.tstr('axc'), c.uint(0)])))
  // Nested maps keep their own keys apart from their parent's.
  assert.doesNotThrow(() => decodeCbor(c.map([c.tstr('a'), c.map([c.tstr('a'), c.uint(0)])], [c.tstr('b'), c.uint(0)])))
  // A caller's depth bound past what the pairwise records cover still finds duplicates.
  let deep = c.map([c.tstr('x'), c.uint(0)], [c.tstr('x'), c.uint(1)])
  for (let i = 0; i < 40; i++) deep = c.map([c.tstr('k'), deep])
  assert.throws(() => decodeCbor(deep, 64), /duplicate map key/)
})
