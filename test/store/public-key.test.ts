import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { test } from 'node:test'
import { BadRequestError } from '../../src/errors.js'
import { parsePublicKey, principalIdFromPublicKey } from '../../src/store/public-key.js'
import { hex, newPublicKey } from './helpers.js'

test('the id is the hex of the first 16 bytes of SHA-256 of the key', async () => {
  const key = await newPublicKey()
  const expected = createHash('sha256').update(key).digest().subarray(0, 16).toString('hex')
  assert.equal(principalIdFromPublicKey(key), expected)
  assert.match(expected, /^[0-9a-f]{32}$/)
})

test('parsePublicKey takes bytes and hex of either case', async () => {
  const key = await newPublicKey()
  assert.deepEqual(parsePublicKey(key), key)
  assert.deepEqual(parsePublicKey(hex(key)), key)
  assert.deepEqual(parsePublicKey(hex(key).toUpperCase()), key)
})

test('parsePublicKey refuses what is not a usable ed25519 key', () => {
  const cases: Array<[string, unknown, RegExp]> = [
    ['short hex', 'ab'.repeat(31), /64 hex characters, got 62/],
    ['non-hex', 'zz'.repeat(32), /64 hex characters/],
    ['short bytes', new Uint8Array(31), /32 bytes, got 31/],
    ['a number', 5, /hex string or a Uint8Array/],
    ['y not on the curve', '02' + '00'.repeat(31), /not a valid ed25519 point/],
    // y = p: a non-canonical encoding that ZIP-215 decoders accept.
    ['non-canonical', 'ed' + 'ff'.repeat(30) + '7f', /not a valid ed25519 point/],
    ['identity (small order)', '01' + '00'.repeat(31), /small-order/],
  ]
  for (const [what, input, message] of cases) {
    assert.throws(() => parsePublicKey(input as string), (err: unknown) => {
      assert.ok(err instanceof BadRequestError, what)
      assert.match(err.message, message, what)
      return true
    })
  }
})
