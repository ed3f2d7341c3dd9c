/**
 * parsePayload at the payload level: size, splitting, batches, compression bombs.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { constants, deflateRawSync } from 'node:zlib'
import { deflateSync } from 'fflate'
import {
  concatBytes, encodeBatch, encodeEnvelope, idBytes, MessageType, parsePayload, signEnvelope, type ParseResult,
} from '../../src/protocol/index.js'
import { inflateRawBounded } from '../../src/protocol/compression.js'
import { DEVICE_ID, DEVICE_SECRET, MAX, T0, c, envelopeBytes, nobleSigner, seq16, strictDecode, unhex } from './helpers.js'

function parse (bytes: Uint8Array, payloadBytesMax = MAX): ParseResult {
  return parsePayload(bytes, { payloadBytesMax, direction: 'up' })
}

function whole (result: ParseResult): string {
  assert.equal(result.ok, false, 'expected the whole payload to be refused')
  return result.ok ? '' : result.reason
}

/**
 * A raw DEFLATE stream of mib MiB of zeros in about a KiB per MiB, made cheaply: node's
 * zlib compresses one MiB with a sync flush (byte-aligned, not final), the copies are
 * concatenated and an empty final block closes the stream.
 */
function zipBomb (mib: number): Uint8Array {
  const oneMiB = deflateRawSync(Buffer.alloc(1 << 20), { level: 9, finishFlush: constants.Z_SYNC_FLUSH })
  return new Uint8Array(Buffer.concat([...Array<Buffer>(mib).fill(oneMiB), Buffer.from([0x03, 0x00])]))
}

function status (i: number): Uint8Array {
  return encodeEnvelope({ type: MessageType.StatusUpdate, src: DEVICE_ID, id: seq16(i), ts: T0, body: { i } })
}

test('size: a payload over the limit is too_large before anything is decoded; at the limit it is read', () => {
  const bytes = status(1)
  assert.equal(whole(parse(bytes, bytes.length - 1)), 'too_large')
  assert.equal(parse(bytes, bytes.length).ok, true)
  // Over the limit even when it is not CBOR at all: size comes first.
  assert.equal(whole(parse(new Uint8Array(MAX + 1).fill(0xff))), 'too_large')
})

test('decode as a whole: not one well-formed item, or not an envelope, COSE_Sign1 or batch', () => {
  for (const bad of ['', 'ff', '1c', 'a1', 'a201', '01 02', '0a', '6161', 'f6', 'd9dfff 80', 'c1 00']) {
    assert.equal(whole(parse(unhex(bad))), 'decode', bad)
  }
  assert.equal(whole(parse(concatBytes(status(1), Uint8Array.of(0)))), 'decode') // trailing byte
  let deep = envelopeBytes()
  for (let i = 0; i < 32; i++) deep = c.array(deep)
  assert.equal(whole(parse(deep)), 'decode')
})

test('batches: 1 to 256 items, each judged alone', () => {
  const one = parse(encodeBatch([status(1)]))
  assert.ok(one.ok && one.batch && one.items.length === 1 && one.items[0].reason === undefined)
  const items = Array.from({ length: 256 }, (_, i) => status(i))
  const full = parse(encodeBatch(items), 1024 * 1024)
  assert.ok(full.ok)
  assert.equal(full.items.length, 256)
  full.items.forEach((item, i) => {
    assert.equal(item.reason, undefined)
    assert.deepEqual(item.raw, items[i]) // exact bytes, for the bridge record
  })
  assert.equal(strictDecode(encodeBatch(items)) instanceof Array, true)
})

test('batches: empty is decode and more than 256 is too_large, for the whole payload', () => {
  assert.equal(whole(parse(c.array())), 'decode')
  assert.equal(whole(parse(c.arrayIndef())), 'decode')
  const many = Array.from({ length: 257 }, (_, i) => status(i))
  assert.equal(whole(parse(c.array(...many), 1024 * 1024)), 'too_large')
  assert.equal(whole(parse(c.arrayIndef(...many), 1024 * 1024)), 'too_large')
  // A head claiming 300 items is refused without walking them.
  assert.equal(whole(parse(concatBytes(unhex('99012c'), status(1)))), 'decode')
})

test('batches: a bad item does not take its neighbours down', () => {
  const signed = signEnvelope(status(3), idBytes(DEVICE_ID), nobleSigner(DEVICE_SECRET))
  const batch = c.arrayIndef(
    status(1),
    envelopeBytes({ 5: c.f64(T0) }), // float ts
    signed,
    c.uint(7), // not an envelope
    c.map(...[[c.uint(7), c.tag(57343, c.array())] as [Uint8Array, Uint8Array]]), // cbor-x record tag
    c.tag(18, c.array(c.bstr(Uint8Array.of(0xa1, 0x01, 0x27)))), // COSE_Sign1 with 1 item
    c.array(status(5)), // a batch in a batch
    envelopeBytes({ 1: c.uint(MessageType.Ack) }), // an Ack sent up
    status(9)
  )
  const result = parse(batch)
  assert.ok(result.ok)
  assert.deepEqual(result.items.map((item) => item.reason ?? 'ok'), ['ok', 'decode', 'ok', 'decode', 'decode', 'decode', 'decode', 'type', 'ok'])
  assert.equal(result.items[2].signed, true)
  assert.deepEqual(result.items[2].raw, signed)
  assert.deepEqual(result.items[8].envelope?.body, { i: 9 })
})

test('a body inflating past the limit is too_large, without an ack, and its neighbours live', () => {
  const bomb = zipBomb(32) // 32 MiB of zeros in ~32 KiB
  assert.ok(bomb.length < 40 * 1024)
  const item = envelopeBytes({ 9: c.uint(1), 7: c.bstr(bomb), 13: c.true() })
  const before = process.memoryUsage().arrayBuffers
  const result = parse(c.array(status(1), item, status(2)))
  const grownBytes = process.memoryUsage().arrayBuffers - before
  assert.ok(result.ok)
  assert.deepEqual(result.items.map((i) => i.reason ?? 'ok'), ['ok', 'too_large', 'ok'])
  assert.equal(result.items[1].ackRe, undefined)
  assert.equal(result.items[1].envelope, undefined)
  // Refused after inflating about the limit, not 32 MiB.
  assert.ok(grownBytes < 8 * 1024 * 1024, `array buffers grew by ${grownBytes} bytes`)
  // A body of exactly the limit is fine.
  const exact = inflateRawBounded(deflateSync(new Uint8Array(1000)), 1000)
  assert.ok(exact.ok && exact.bytes.length === 1000)
  const over = inflateRawBounded(deflateSync(new Uint8Array(1001)), 1000)
  assert.ok(!over.ok && over.reason === 'too_large')
})

test('inflateRawBounded stops early on a bomb far larger than the limit', () => {
  const bomb = zipBomb(256)
  assert.ok(inflateRawBounded(zipBomb(2), 2 * 1024 * 1024).ok) // the bomb is valid raw DEFLATE
  const started = performance.now()
  const result = inflateRawBounded(bomb, 64 * 1024)
  assert.ok(!result.ok && result.reason === 'too_large')
  // Inflating 256 MiB takes over a second; stopping at the limit takes a few ms.
  assert.ok(performance.now() - started < 150, `took ${performance.now() - started} ms`)
})

test('payload bytes may be a Buffer; every slice handed out is a plain Uint8Array', () => {
  const result = parse(Buffer.from(c.array(status(1))))
  assert.ok(result.ok)
  assert.equal(result.items[0].raw.constructor, Uint8Array)
  assert.equal(result.items[0].envelope?.id.constructor, Uint8Array)
})

test('parsePayload refuses caller bugs', () => {
  assert.throws(() => parsePayload('x' as never, { payloadBytesMax: MAX, direction: 'up' }), /bytes expected Uint8Array, got string/)
  assert.throws(() => parsePayload(status(1), { payloadBytesMax: 0, direction: 'up' }), /payloadBytesMax expected a positive integer/)
  assert.throws(() => parsePayload(status(1), { payloadBytesMax: MAX, direction: 'sideways' as never }), /direction expected/)
})

test('random bytes never throw out of parsePayload', () => {
  let seed = 42
  const random = (): number => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff
    return seed
  }
  const good = [status(1), signEnvelope(status(2), idBytes(DEVICE_ID), nobleSigner(DEVICE_SECRET)), encodeBatch([status(3), status(4)])]
  for (let i = 0; i < 3000; i++) {
    const base = good[i % good.length]
    const bytes = new Uint8Array(base)
    const flips = 1 + (random() % 4)
    for (let f = 0; f < flips; f++) bytes[random() % bytes.length] = random() & 0xff
    const cut = random() % 4 === 0 ? bytes.subarray(0, random() % bytes.length) : bytes
    const result = parse(cut)
    if (result.ok) for (const item of result.items) assert.ok(item.reason !== undefined || item.envelope !== undefined)
  }
})
