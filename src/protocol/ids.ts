import { sha256 } from '@noble/hashes/sha2.js'
import { assertBytes, describe, fromHex, toHex } from './bytes.js'
import { ID_BYTES } from './constants.js'

/** Raw ed25519 public keys are 32 bytes (RFC 8032). */
export const PUBLIC_KEY_BYTES = 32

const PRINCIPAL_ID = /^[0-9a-f]{32}$/

/** A principal's id (§1): lowercase hex of the first 16 bytes of SHA-256(public key). */
export function principalIdFromPublicKey (publicKey: Uint8Array): string {
  assertBytes('publicKey', publicKey, PUBLIC_KEY_BYTES)
  return toHex(sha256(publicKey).subarray(0, ID_BYTES))
}

/** True when value has the form of a principal id: 32 lowercase hex characters. */
export function isPrincipalId (value: unknown): value is string {
  return typeof value === 'string' && PRINCIPAL_ID.test(value)
}

/** Throws a TypeError unless value is a principal id. */
export function assertPrincipalId (name: string, value: unknown): asserts value is string {
  if (!isPrincipalId(value)) {
    const got = typeof value === 'string' ? `"${value.slice(0, 40)}" (length=${value.length})` : describe(value)
    throw new TypeError(`${name} expected a principal id of 32 lowercase hex characters, got ${got}`)
  }
}

/** The 16 bytes behind a principal id: the COSE kid of its signed envelopes. */
export function idBytes (id: string): Uint8Array {
  assertPrincipalId('id', id)
  return fromHex(id)
}
