/**
 * COSE_Sign1: what we sign verifies anywhere, what others sign we read byte for byte.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { encode as cborgEncode } from 'cborg'
import {
  encodeBatch, encodeEnvelope, idBytes, MessageType, parsePayload, PROTECTED_EDDSA, signEnvelope, sigStructure,
  type ParsedItem,
} from '../../src/protocol/index.js'
import {
  Cose18, DEVICE_ID, DEVICE_PUBLIC, DEVICE_SECRET, MAX, T0, c, envelopeBytes, hex, nobleSigner, nodeSigner, nodeVerifyRaw,
  seq16, strictDecode, unhex,
} from './helpers.js'

const kid = idBytes(DEVICE_ID)
const sign = nobleSigner(DEVICE_SECRET)

function parseOne (bytes: Uint8Array): ParsedItem {
  const result = parsePayload(bytes, { payloadBytesMax: MAX, direction: 'up' })
  assert.ok(result.ok, JSON.stringify(result))
  return result.items[0]
}

function envelope (): Uint8Array {
  return encodeEnvelope({ type: MessageType.SecurityAlert, src: DEVICE_ID, id: seq16(0xb0), ts: T0, prio: 0, body: { kind: 'tamper', detail: 'lid' } })
}

test('sigStructure is ["Signature1", protected, h\'\', payload] in CBOR', () => {
  const payload = Uint8Array.of(0xa0)
  assert.equal(hex(sigStructure(PROTECTED_EDDSA, payload)), '846a5369676e61747572653143a101274041a0')
  const decoded = strictDecode(sigStructure(PROTECTED_EDDSA, new Uint8Array(300))) as unknown[]
  assert.deepEqual(decoded, ['Signature1', PROTECTED_EDDSA, new Uint8Array(0), new Uint8Array(300)])
})

test('the COSE_Sign1 layout is exactly §4: tag 18, {1: -8}, {4: kid}, payload, signature', () => {
  const env = envelope()
  const signed = signEnvelope(env, kid, sign)
  const decoded = strictDecode(signed)
  assert.ok(decoded instanceof Cose18)
  const [protectedBytes, unprotected, payload, signature] = decoded.content as [Uint8Array, Map<number, unknown>, Uint8Array, Uint8Array]
  assert.equal(hex(protectedBytes), 'a10127')
  assert.deepEqual([...unprotected.entries()], [[4, kid]])
  assert.deepEqual(payload, env)
  assert.equal(signature.length, 64)
  assert.equal(hex(signed.subarray(0, 9)), 'd28443a10127a10450')
})

test('signatures verify with node:crypto, and noble and node:crypto sign byte-identically', () => {
  const env = envelope()
  const byNoble = signEnvelope(env, kid, sign)
  const byNode = signEnvelope(env, kid, nodeSigner(DEVICE_SECRET))
  assert.deepEqual(byNoble, byNode)
  const item = parseOne(byNoble)
  assert.ok(item.cose)
  assert.deepEqual(item.cose.sigInput, sigStructure(PROTECTED_EDDSA, env))
  assert.ok(nodeVerifyRaw(DEVICE_PUBLIC, item.cose.sigInput, item.cose.signature))
  const tampered = new Uint8Array(byNoble)
  tampered[tampered.length - 70] ^= 1 // a payload byte
  const bad = parseOne(tampered)
  assert.ok(bad.cose === undefined || !nodeVerifyRaw(DEVICE_PUBLIC, bad.cose.sigInput, bad.cose.signature))
})

test('an envelope made by another encoder is signed and verified over its own bytes', () => {
  // cborg writes the same map with its own choices; nobody re-encodes it.
  const foreign = cborgEncode(new Map<number, unknown>([
    [13, true], [0, 1], [1, MessageType.StatusUpdate], [2, seq16(0xc0)], [3, DEVICE_ID], [5, T0], [7, { temp: 20 }],
  ]))
  const item = parseOne(signEnvelope(foreign, kid, sign))
  assert.equal(item.reason, undefined, item.detail)
  assert.deepEqual(item.cose?.sigInput, sigStructure(PROTECTED_EDDSA, foreign))
  assert.ok(item.cose && nodeVerifyRaw(DEVICE_PUBLIC, item.cose.sigInput, item.cose.signature))
  assert.deepEqual(item.envelope?.body, { temp: 20 })
})

test('a COSE_Sign1 with indefinite lengths verifies over the content of its byte strings', () => {
  const env = envelope()
  const signature = sign(sigStructure(PROTECTED_EDDSA, env))
  const chunkedPayload = c.chunked(2, c.bstr(env.subarray(0, 10)), c.bstr(env.subarray(10)))
  const bytes = c.tag(18, c.arrayIndef(c.bstr(PROTECTED_EDDSA), c.mapIndef([c.uint(4), c.bstr(kid)]), chunkedPayload, c.bstr(signature)))
  const item = parseOne(bytes)
  assert.equal(item.reason, undefined, item.detail)
  assert.ok(item.cose && nodeVerifyRaw(DEVICE_PUBLIC, item.cose.sigInput, item.cose.signature))
  assert.deepEqual(item.raw, bytes)
})

test('signed items in a batch keep their exact bytes', () => {
  const a = signEnvelope(envelope(), kid, sign)
  const b = encodeEnvelope({ type: MessageType.Heartbeat, src: DEVICE_ID, id: seq16(1), ts: T0 })
  const result = parsePayload(encodeBatch([a, b]), { payloadBytesMax: MAX, direction: 'up' })
  assert.ok(result.ok)
  assert.deepEqual(result.items.map((item) => [item.signed, item.raw]), [[true, a], [false, b]])
})

test('a malformed COSE structure is decode', () => {
  const env = envelope()
  const sig = c.bstr(new Uint8Array(64))
  const prot = c.bstr(PROTECTED_EDDSA)
  const unprot = c.map([c.uint(4), c.bstr(kid)])
  const cases: Array<[Uint8Array, RegExp]> = [
    [c.tag(18, c.map()), /content is not an array/],
    [c.tag(18, c.array(prot, unprot, c.bstr(env))), /3 items, expected 4/],
    [c.tag(18, c.array(prot, unprot, c.bstr(env), sig, sig)), /more than 4 items/],
    [c.tag(18, c.array(c.map([c.uint(1), c.nint(-8)]), unprot, c.bstr(env), sig)), /protected header is not a byte string/],
    [c.tag(18, c.array(prot, c.array(), c.bstr(env), sig)), /unprotected header is not a map/],
    [c.tag(18, c.array(prot, unprot, c.null(), sig)), /payload is not a byte string/],
    [c.tag(18, c.array(prot, unprot, env, sig)), /payload is not a byte string/],
    [c.tag(18, c.array(prot, unprot, c.bstr(env), c.tstr('sig'))), /signature is not a byte string/],
    [c.tag(18, c.array(prot, c.map([c.uint(4), c.tstr(DEVICE_ID)]), c.bstr(env), sig)), /kid is not a byte string/],
    [c.tag(18, c.array(prot, c.map([c.uint(4), c.bstr(kid)], [c.uint(4), c.bstr(kid)]), c.bstr(env), sig)), /duplicate map key/],
    [c.tag(18, c.array(prot, c.map([c.uint(5), c.tag(1, c.uint(0))]), c.bstr(env), sig)), /tag 1 is not allowed/],
    [c.tag(18, c.array(prot, unprot, c.bstr(c.array()), sig)), /not a map/],
    [c.tag(18, c.array(prot, unprot, c.bstr(unhex('a1')), sig)), /not one well-formed CBOR item/],
    [c.tag(18, c.array(prot, unprot, c.bstr(c.tag(18, c.array())), sig)), /not a map/],
  ]
  for (const [bytes, detail] of cases) {
    const item = parseOne(bytes)
    assert.equal(item.reason, 'decode', `${hex(bytes)}: ${item.detail}`)
    assert.equal(item.signed, true)
    assert.match(item.detail ?? '', detail)
  }
})

test('header contents are not judged by parsePayload: alg and kid are read for checkEnvelope', () => {
  const env = envelopeBytes()
  const sig = c.bstr(new Uint8Array(64))
  const read = (protectedBytes: Uint8Array, unprotected: Uint8Array): ParsedItem => parseOne(c.tag(18, c.array(c.bstr(protectedBytes), unprotected, c.bstr(env), sig)))
  assert.equal(read(unhex('a10126'), c.map()).cose?.alg, -7)
  assert.equal(read(c.map([c.uint(1), c.nint(-8, 2)]), c.map()).cose?.alg, -8) // a wider -8 is still -8
  assert.equal(read(unhex(''), c.map()).cose?.alg, undefined)
  assert.equal(read(c.map([c.uint(1), c.nint(-8)], [c.uint(3), c.uint(0)]), c.map()).cose?.alg, undefined)
  assert.equal(read(c.map([c.uint(1), c.tstr('EdDSA')]), c.map()).cose?.alg, 'EdDSA')
  assert.equal(read(unhex('ff'), c.map()).cose?.alg, undefined)
  assert.deepEqual(read(PROTECTED_EDDSA, c.map()).cose?.kid, new Uint8Array(0))
  assert.deepEqual(read(PROTECTED_EDDSA, c.map([c.uint(4), c.bstr(Uint8Array.of(1))])).cose?.kid, Uint8Array.of(1))
})

test('signEnvelope refuses caller bugs', () => {
  assert.throws(() => signEnvelope(envelope(), new Uint8Array(15), sign), /kid expected Uint8Array of length 16, got length=15/)
  assert.throws(() => signEnvelope(unhex('a1'), kid, sign), /envelopeBytes expected one CBOR item/)
  assert.throws(() => signEnvelope(unhex('80'), kid, sign), /expected a CBOR map/)
  assert.throws(() => signEnvelope(envelope(), kid, () => new Uint8Array(10)), /signature returned by sign expected Uint8Array of length 64/)
  assert.throws(() => signEnvelope(envelope(), kid, 'key' as never), /sign expected a function/)
})
