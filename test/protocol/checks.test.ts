/**
 * checkEnvelope (src, skew, unsigned, signature header) and validateBody (§5 shapes).
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import {
  bodyProblem, checkEnvelope, encodeEnvelope, idBytes, MessageType, parsePayload, PROTECTED_EDDSA, signEnvelope,
  sigStructure, validateBody, type EnvelopeInput, type ParsedItem,
} from '../../src/protocol/index.js'
import { DEVICE_ID, DEVICE_SECRET, HUB_ID, MAX, SKEW_MS, T0, c, envelopeBytes, nobleSigner, seq16, unhex } from './helpers.js'

const context = { principalId: DEVICE_ID, nowMs: T0, skewMs: SKEW_MS }
const sign = nobleSigner(DEVICE_SECRET)

function item (bytes: Uint8Array): ParsedItem {
  const result = parsePayload(bytes, { payloadBytesMax: MAX, direction: 'up' })
  assert.ok(result.ok)
  return result.items[0]
}

function unsigned (input: Partial<EnvelopeInput> = {}): ParsedItem {
  return item(encodeEnvelope({ type: MessageType.StatusUpdate, src: DEVICE_ID, id: seq16(1), ts: T0, body: { t: 1 }, ...input }))
}

function signed (input: Partial<EnvelopeInput> = {}): ParsedItem {
  const env = encodeEnvelope({ type: MessageType.StatusUpdate, src: DEVICE_ID, id: seq16(1), ts: T0, body: { t: 1 }, ...input })
  return item(signEnvelope(env, idBytes(DEVICE_ID), sign))
}

/** A COSE_Sign1 with the given headers around a valid envelope, signed for real. */
function withHeaders (protectedBytes: Uint8Array, unprotected: Uint8Array, signatureLength = 64): ParsedItem {
  const env = encodeEnvelope({ type: MessageType.StatusUpdate, src: DEVICE_ID, id: seq16(1), ts: T0, prio: 0 })
  const signature = sign(sigStructure(protectedBytes, env)).subarray(0, signatureLength)
  return item(c.tag(18, c.array(c.bstr(protectedBytes), unprotected, c.bstr(env), c.bstr(signature))))
}

test('a good item passes, signed or not', () => {
  assert.equal(checkEnvelope(unsigned(), context), null)
  assert.equal(checkEnvelope(signed({ prio: 0 }), context), null)
})

test('src: the envelope must come from the authenticated principal', () => {
  assert.equal(checkEnvelope(unsigned({ src: HUB_ID }), context), 'src')
  assert.equal(checkEnvelope(unsigned(), { ...context, principalId: HUB_ID }), 'src')
})

test('skew: |ts - now| within the window, both ways, bounds included', () => {
  assert.equal(checkEnvelope(unsigned({ ts: T0 - SKEW_MS }), context), null)
  assert.equal(checkEnvelope(unsigned({ ts: T0 + SKEW_MS }), context), null)
  assert.equal(checkEnvelope(unsigned({ ts: T0 - SKEW_MS - 1 }), context), 'skew')
  assert.equal(checkEnvelope(unsigned({ ts: T0 + SKEW_MS + 1 }), context), 'skew')
  assert.equal(checkEnvelope(unsigned({ ts: 0 }), context), 'skew')
})

test('unsigned: prio 0 and 1 and the must-sign types need a signature, a TokenClaim never', () => {
  assert.equal(checkEnvelope(unsigned({ prio: 0 }), context), 'unsigned')
  assert.equal(checkEnvelope(unsigned({ prio: 1 }), context), 'unsigned')
  assert.equal(checkEnvelope(unsigned({ prio: 2 }), context), null)
  assert.equal(checkEnvelope(unsigned({ prio: 3 }), context), null)
  for (const type of [MessageType.ProofSubmission, MessageType.TokenTransfer, MessageType.SecurityAlert]) {
    assert.equal(checkEnvelope(unsigned({ type, prio: 3 }), context), 'unsigned')
    assert.equal(checkEnvelope(signed({ type, prio: 3 }), context), null)
  }
  assert.equal(checkEnvelope(unsigned({ type: MessageType.TokenClaim, prio: 0 }), context), null)
})

test('signature: alg must be -8, protected exactly {1: -8}, kid the principal, signature 64 bytes', () => {
  const kid = c.map([c.uint(4), c.bstr(idBytes(DEVICE_ID))])
  assert.equal(checkEnvelope(withHeaders(PROTECTED_EDDSA, kid), context), null)
  assert.equal(checkEnvelope(withHeaders(unhex('a10126'), kid), context), 'signature') // alg -7 (ES256)
  assert.equal(checkEnvelope(withHeaders(unhex(''), kid), context), 'signature')
  assert.equal(checkEnvelope(withHeaders(unhex('a2012704' + '50' + '00'.repeat(16)), kid), context), 'signature')
  assert.equal(checkEnvelope(withHeaders(PROTECTED_EDDSA, c.map([c.uint(4), c.bstr(idBytes(HUB_ID))])), context), 'signature')
  assert.equal(checkEnvelope(withHeaders(PROTECTED_EDDSA, c.map([c.uint(4), c.bstr(idBytes(DEVICE_ID).subarray(0, 15))])), context), 'signature')
  assert.equal(checkEnvelope(withHeaders(PROTECTED_EDDSA, c.map()), context), 'signature')
  assert.equal(checkEnvelope(withHeaders(PROTECTED_EDDSA, kid, 63), context), 'signature')
})

test('the order of §4: src, skew, unsigned, signature', () => {
  assert.equal(checkEnvelope(unsigned({ src: HUB_ID, ts: 0, prio: 0 }), context), 'src')
  assert.equal(checkEnvelope(unsigned({ ts: 0, prio: 0 }), context), 'skew')
  const wrongKidFarTs = withHeaders(PROTECTED_EDDSA, c.map())
  assert.equal(checkEnvelope(wrongKidFarTs, { ...context, nowMs: T0 + 10 * SKEW_MS }), 'skew')
})

test('an item parsePayload rejected keeps its reason', () => {
  const rejected = item(envelopeBytes({ 1: c.uint(MessageType.Ack) }))
  assert.equal(rejected.reason, 'type')
  assert.equal(checkEnvelope(rejected, context), 'type')
})

test('checkEnvelope refuses caller bugs', () => {
  assert.throws(() => checkEnvelope(unsigned(), { ...context, principalId: 'nope' }), /principalId expected a principal id/)
  assert.throws(() => checkEnvelope(unsigned(), { ...context, nowMs: Number.NaN }), /nowMs expected a finite number/)
  assert.throws(() => checkEnvelope(unsigned(), { ...context, skewMs: -1 }), /skewMs expected a non-negative number/)
  assert.throws(() => checkEnvelope({ raw: new Uint8Array(0), signed: false }, context), /expected an envelope or a reason/)
})

test('validateBody: the shapes of §5', () => {
  const proof = { pi_a: ['1', '2', '1'], pi_b: [['1', '2'], ['3', '4'], ['1', '0']], pi_c: ['5', '6', '1'], protocol: 'groth16', curve: 'bn128' }
  const good: Array<[number, unknown, 'up' | 'down']> = [
    [MessageType.Heartbeat, undefined, 'up'],
    [MessageType.Heartbeat, null, 'up'],
    [MessageType.Heartbeat, { uptime: 5, battery: 0.9 }, 'up'],
    [MessageType.StatusUpdate, { temp: 21.5 }, 'up'],
    [MessageType.StatusUpdate, {}, 'up'],
    [MessageType.ConfigurationUpdate, { interval: 60 }, 'down'],
    [MessageType.SecurityAlert, { kind: 'tamper', detail: 'lid opened' }, 'up'],
    [MessageType.SecurityAlert, { kind: 'tamper', detail: { sensor: 2 } }, 'up'],
    [MessageType.StateUpdate, { reported: { led: 'on' } }, 'up'],
    [MessageType.StateUpdate, { delta: { led: 'off' }, version: 7 }, 'down'],
    [MessageType.ProofSubmission, { circuit: 'membership', proof, publicSignals: ['123', '0'] }, 'up'],
    [MessageType.TokenClaim, { circuit: 'claim', proof, publicSignals: [] }, 'up'],
    [MessageType.StatusSync, { version: 0 }, 'up'],
    [MessageType.StatusSync, { version: 2n ** 60n }, 'up'],
    [MessageType.Ack, { re: seq16(0), ok: true, code: 0, reason: '' }, 'down'],
    [MessageType.Ack, { re: seq16(0), ok: false, code: 5, reason: 'skew' }, 'down'],
    [MessageType.Ack, { re: seq16(0), ok: false, code: 101, reason: 'claim_spent', result: { x: 1 } }, 'down'],
    [MessageType.TokenTransfer, 'anything: the project defines it', 'up'],
    [MessageType.MiningReward, [1, 2], 'down'],
  ]
  for (const [type, body, direction] of good) assert.equal(bodyProblem(type, body, direction), null, `${type} ${JSON.stringify(body, (_, v) => typeof v === 'bigint' ? String(v) : v)}`)
  const bad: Array<[number, unknown, 'up' | 'down']> = [
    [MessageType.Heartbeat, 5, 'up'],
    [MessageType.StatusUpdate, undefined, 'up'],
    [MessageType.StatusUpdate, [1], 'up'],
    [MessageType.StatusUpdate, new Map([[1, 2]]), 'up'], // integer keys: §5 says text
    [MessageType.StatusUpdate, Uint8Array.of(1), 'up'],
    [MessageType.SecurityAlert, { kind: '', detail: 'x' }, 'up'],
    [MessageType.SecurityAlert, { kind: 'tamper' }, 'up'],
    [MessageType.StateUpdate, { reported: 1 }, 'up'],
    [MessageType.StateUpdate, { reported: {} }, 'down'],
    [MessageType.StateUpdate, { delta: {}, version: -1 }, 'down'],
    [MessageType.StateUpdate, { delta: {}, version: 1.5 }, 'down'],
    [MessageType.ProofSubmission, { circuit: 'm', proof: { ...proof, pi_a: ['1', '2'] }, publicSignals: [] }, 'up'],
    [MessageType.ProofSubmission, { circuit: 'm', proof: { ...proof, pi_b: [['1', '2'], ['3']] }, publicSignals: [] }, 'up'],
    [MessageType.ProofSubmission, { circuit: 'm', proof: { ...proof, pi_c: ['1', '2', 'x'] }, publicSignals: [] }, 'up'],
    [MessageType.ProofSubmission, { circuit: 'm', proof: { ...proof, protocol: 'plonk' }, publicSignals: [] }, 'up'],
    [MessageType.ProofSubmission, { circuit: 'm', proof, publicSignals: [1] }, 'up'],
    [MessageType.ProofSubmission, { circuit: 'm', proof, publicSignals: ['01'] }, 'up'],
    [MessageType.ProofSubmission, { circuit: '', proof, publicSignals: [] }, 'up'],
    [MessageType.ProofSubmission, { proof, publicSignals: [] }, 'up'],
    [MessageType.StatusSync, {}, 'up'],
    [MessageType.Ack, { re: seq16(0), ok: true, code: 1, reason: '' }, 'down'],
    [MessageType.Ack, { re: seq16(0), ok: false, code: 0, reason: 'x' }, 'down'],
    [MessageType.Ack, { re: seq16(0), ok: false, code: 5, reason: 'replay' }, 'down'],
    [MessageType.Ack, { re: seq16(0).subarray(1), ok: true, code: 0, reason: '' }, 'down'],
    [MessageType.Ack, { ok: true, code: 0, reason: '' }, 'down'],
    [MessageType.Ack, { re: seq16(0), ok: true, code: 0, reason: '' }, 'up'], // never travels up
    [MessageType.StatusUpdate, { t: 1 }, 'down'],
    [99, {}, 'up'],
  ]
  for (const [type, body, direction] of bad) assert.equal(validateBody(type, body, direction), false, `${type} ${String(JSON.stringify(body))}`)
  assert.throws(() => validateBody(1, {}, 'left' as never), /direction expected/)
})
