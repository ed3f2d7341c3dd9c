/**
 * The MQTT CONNECT password of §2: ts (8 bytes, big-endian ms) ‖ nonce (16) ‖ sig (64),
 * sig being ed25519 over "mn1/connect" ‖ 0x00 ‖ id (32 ASCII bytes) ‖ ts ‖ nonce.
 */
import { randomBytes } from '@noble/hashes/utils.js'
import { assertBytes, concatBytes, copyBytes, describe, utf8Bytes } from './bytes.js'
import { ID_BYTES } from './constants.js'
import { SIGNATURE_BYTES, type Signer } from './cose.js'
import { assertPrincipalId, isPrincipalId } from './ids.js'

/** The domain separation prefix: a CONNECT signature can never pass for another signature. */
export const CONNECT_CONTEXT = 'mn1/connect'
export const CONNECT_TS_BYTES = 8
export const CONNECT_NONCE_BYTES = ID_BYTES
export const CONNECT_PASSWORD_BYTES = CONNECT_TS_BYTES + CONNECT_NONCE_BYTES + SIGNATURE_BYTES

const CONTEXT_BYTES = concatBytes(utf8Bytes(CONNECT_CONTEXT), Uint8Array.of(0))
const TWO_POW_32 = 0x1_0000_0000

export interface ConnectPassword {
  /** The client's clock when it signed, ms since the Unix epoch (approximate beyond 2^53, so always out of the window). */
  ts: number
  nonce: Uint8Array
  signature: Uint8Array
  /** What the signature must verify over, for the id it was parsed for. */
  signingInput: Uint8Array
}

/** The 68 bytes a principal signs to connect: "mn1/connect" ‖ 0x00 ‖ id ‖ ts ‖ nonce. */
export function connectSigningInput (id: string, ts: number, nonce: Uint8Array): Uint8Array {
  assertPrincipalId('id', id)
  checkTs(ts)
  assertBytes('nonce', nonce, CONNECT_NONCE_BYTES)
  return concatBytes(CONTEXT_BYTES, utf8Bytes(id), tsBytes(ts), nonce)
}

/** The 88-byte password for principal id, signed with sign; ts defaults to now, nonce to 16 random bytes. */
export function buildConnectPassword (id: string, sign: Signer, options: { ts?: number, nonce?: Uint8Array } = {}): Uint8Array {
  if (typeof sign !== 'function') throw new TypeError(`sign expected a function, got ${describe(sign)}`)
  const ts = options.ts ?? Date.now()
  const nonce = options.nonce ?? randomBytes(CONNECT_NONCE_BYTES)
  const input = connectSigningInput(id, ts, nonce)
  const signature = sign(input)
  assertBytes('signature returned by sign', signature, SIGNATURE_BYTES)
  return concatBytes(tsBytes(ts), nonce, signature)
}

/**
 * Splits a password received from principal id. Returns null unless password is exactly
 * 88 bytes and id has the form of a principal id: both come from the client, so nothing
 * here throws for them. The caller verifies signature over signingInput, then the window,
 * then the nonce (§2).
 */
export function parseConnectPassword (password: unknown, id: unknown): ConnectPassword | null {
  if (!(password instanceof Uint8Array) || password.length !== CONNECT_PASSWORD_BYTES || !isPrincipalId(id)) return null
  const high = readUint32(password, 0)
  const low = readUint32(password, 4)
  const ts = high * TWO_POW_32 + low
  const tsPart = copyBytes(password, 0, CONNECT_TS_BYTES)
  const nonce = copyBytes(password, CONNECT_TS_BYTES, CONNECT_TS_BYTES + CONNECT_NONCE_BYTES)
  const signature = copyBytes(password, CONNECT_TS_BYTES + CONNECT_NONCE_BYTES)
  return { ts, nonce, signature, signingInput: concatBytes(CONTEXT_BYTES, utf8Bytes(id), tsPart, nonce) }
}

function checkTs (ts: unknown): asserts ts is number {
  if (typeof ts !== 'number' || !Number.isSafeInteger(ts) || ts < 0) {
    throw new TypeError(`ts expected a non-negative integer (ms), got ${String(ts)}`)
  }
}

function tsBytes (ts: number): Uint8Array {
  const out = new Uint8Array(CONNECT_TS_BYTES)
  const high = Math.floor(ts / TWO_POW_32)
  const low = ts % TWO_POW_32
  for (let i = 0; i < 4; i++) {
    out[3 - i] = (high / 2 ** (8 * i)) & 0xff
    out[7 - i] = (low / 2 ** (8 * i)) & 0xff
  }
  return out
}

function readUint32 (bytes: Uint8Array, pos: number): number {
  return bytes[pos] * 0x100_0000 + bytes[pos + 1] * 0x1_0000 + bytes[pos + 2] * 0x100 + bytes[pos + 3]
}
