import { test } from 'node:test'
import assert from 'node:assert/strict'
import {
  buildConnectPassword, connectSigningInput, CONNECT_PASSWORD_BYTES, parseConnectPassword,
} from '../../src/protocol/index.js'
import { DEVICE_ID, DEVICE_PUBLIC, DEVICE_SECRET, HUB_ID, T0, hex, nobleSigner, nodeSigner, nodeVerifyRaw, seq16 } from './helpers.js'

test('the signing input is "mn1/connect" 0x00 id ts nonce', () => {
  const input = connectSigningInput(DEVICE_ID, T0, seq16(0))
  assert.equal(input.length, 68)
  assert.equal(hex(input.subarray(0, 12)), hex(new TextEncoder().encode('mn1/connect\0')))
  assert.equal(new TextDecoder().decode(input.subarray(12, 44)), DEVICE_ID)
  assert.equal(hex(input.subarray(44, 52)), '0000019b76daa800')
  assert.deepEqual(input.subarray(52), seq16(0))
})

test('build and parse: 88 bytes that verify with node:crypto, identical from noble and node:crypto', () => {
  const password = buildConnectPassword(DEVICE_ID, nobleSigner(DEVICE_SECRET), { ts: T0, nonce: seq16(0) })
  assert.equal(password.length, CONNECT_PASSWORD_BYTES)
  assert.deepEqual(password, buildConnectPassword(DEVICE_ID, nodeSigner(DEVICE_SECRET), { ts: T0, nonce: seq16(0) }))
  const parsed = parseConnectPassword(password, DEVICE_ID)
  assert.ok(parsed)
  assert.equal(parsed.ts, T0)
  assert.deepEqual(parsed.nonce, seq16(0))
  assert.deepEqual(parsed.signingInput, connectSigningInput(DEVICE_ID, T0, seq16(0)))
  assert.ok(nodeVerifyRaw(DEVICE_PUBLIC, parsed.signingInput, parsed.signature))
  // Checked against another id, the same password does not verify.
  const other = parseConnectPassword(password, HUB_ID)
  assert.ok(other && !nodeVerifyRaw(DEVICE_PUBLIC, other.signingInput, other.signature))
})

test('defaults: ts now, a random nonce', () => {
  const before = Date.now()
  const a = parseConnectPassword(buildConnectPassword(DEVICE_ID, nobleSigner(DEVICE_SECRET)), DEVICE_ID)
  const b = parseConnectPassword(buildConnectPassword(DEVICE_ID, nobleSigner(DEVICE_SECRET)), DEVICE_ID)
  assert.ok(a && b)
  assert.ok(a.ts >= before && a.ts <= Date.now())
  assert.notDeepEqual(a.nonce, b.nonce)
})

test('parse returns null unless exactly 88 bytes and a principal id, never throws', () => {
  const password = buildConnectPassword(DEVICE_ID, nobleSigner(DEVICE_SECRET), { ts: T0, nonce: seq16(0) })
  assert.equal(parseConnectPassword(password.subarray(0, 87), DEVICE_ID), null)
  assert.equal(parseConnectPassword(new Uint8Array(89), DEVICE_ID), null)
  assert.equal(parseConnectPassword(new Uint8Array(0), DEVICE_ID), null)
  assert.equal(parseConnectPassword(undefined, DEVICE_ID), null)
  assert.equal(parseConnectPassword('x'.repeat(88), DEVICE_ID), null)
  assert.equal(parseConnectPassword(password, 'not-an-id'), null)
  assert.equal(parseConnectPassword(password, DEVICE_ID.toUpperCase()), null)
  assert.ok(parseConnectPassword(Buffer.from(password), DEVICE_ID))
  const far = new Uint8Array(password)
  far.fill(0xff, 0, 8)
  assert.equal(parseConnectPassword(far, DEVICE_ID)?.ts, 2 ** 64 - 1)
})

test('caller bugs are TypeErrors', () => {
  const sign = nobleSigner(DEVICE_SECRET)
  assert.throws(() => buildConnectPassword('x', sign), /id expected a principal id/)
  assert.throws(() => buildConnectPassword(DEVICE_ID, sign, { nonce: new Uint8Array(15) }), /nonce expected Uint8Array of length 16, got length=15/)
  assert.throws(() => buildConnectPassword(DEVICE_ID, sign, { ts: -1 }), /ts expected a non-negative integer/)
  assert.throws(() => buildConnectPassword(DEVICE_ID, () => new Uint8Array(3)), /signature returned by sign expected Uint8Array of length 64/)
})
