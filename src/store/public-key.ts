/**
 * Public keys and principal ids of protocol-v1 §1. A key is accepted only when it is the
 * canonical encoding of a curve point (RFC 8032 5.1.3) and not of small order.
 */
import { Point } from '@noble/ed25519'
import { PUBLIC_KEY_BYTES } from '../protocol/index.js'
import { BadRequestError } from '../errors.js'

export { principalIdFromPublicKey, PUBLIC_KEY_BYTES } from '../protocol/index.js'
const PUBLIC_KEY_HEX = /^[0-9a-fA-F]{64}$/

/** Raw key bytes from hex (either case) or bytes; throws BadRequestError for anything else. */
export function parsePublicKey (input: Uint8Array | string): Uint8Array {
  let bytes: Uint8Array
  if (typeof input === 'string') {
    if (!PUBLIC_KEY_HEX.test(input)) {
      throw new BadRequestError(`publicKey must be 64 hex characters, got ${input.length} characters`)
    }
    bytes = new Uint8Array(Buffer.from(input, 'hex'))
  } else if (input instanceof Uint8Array) {
    if (input.length !== PUBLIC_KEY_BYTES) {
      throw new BadRequestError(`publicKey must be ${PUBLIC_KEY_BYTES} bytes, got ${input.length}`)
    }
    bytes = new Uint8Array(input)
  } else {
    throw new BadRequestError('publicKey must be a hex string or a Uint8Array')
  }
  let point: Point
  try {
    // zip215 false: strict RFC 8032 decoding, which refuses non-canonical encodings (y ≥ p,
    // or x = 0 with the sign bit set) that would let one point be enrolled under two ids.
    point = Point.fromBytes(bytes, false)
  } catch {
    throw new BadRequestError('publicKey is not a valid ed25519 point')
  }
  // A small-order key (the identity, say) is a point, but signatures under it can be forged
  // by anyone with some verifiers, so no honest key pair has one. Deliberately stricter than §8.
  if (point.isSmallOrder()) throw new BadRequestError('publicKey is a small-order ed25519 point')
  return bytes
}
