/**
 * COSE_Sign1 (RFC 9052 §4.2, §4.4) as §4 fixes it: tag 18 over
 * [protected = bstr {1: -8}, unprotected = {4: kid}, payload = bstr envelope, signature],
 * the signature being ed25519 over the CBOR of ["Signature1", protected, h'', payload].
 *
 * Both directions splice bytes rather than re-encode: the signer wraps the envelope bytes
 * it was given, and the reader builds the Sig_structure from the protected header and
 * payload exactly as received, so no canonical encoding is needed anywhere.
 */
import { assertBytes, concatBytes, describe, utf8Bytes, utf8Text } from './bytes.js'
import { encodeHead, headLength, writeHead } from './cbor.js'
import {
  CborScanError, headInfo, headMajor, headNext, headValue, mapEntries, readHead, scanHead, stringContent, stringContentAt, walkItem,
  walkWhole,
  type WalkOptions,
} from './cbor-scan.js'
import { BODY_DEPTH_MAX, CBOR_DEPTH_MAX, COSE_ALG_EDDSA, COSE_LABEL_ALG, COSE_LABEL_KID, COSE_SIGN1_TAG, ID_BYTES } from './constants.js'

/** Signs a message (ed25519: 64 bytes back). The hub may use node:crypto, the SDK @noble/ed25519. */
export type Signer = (message: Uint8Array) => Uint8Array

/** ed25519 signatures are 64 bytes (RFC 8032). */
export const SIGNATURE_BYTES = 64

/** The protected header of every signature we make: the bstr content {1: -8}. */
export const PROTECTED_EDDSA = Uint8Array.of(0xa1, 0x01, 0x27)

const SIGNATURE1 = utf8Bytes('Signature1')
// 0xd2 = tag 18; 0x84 = array of 4; 0x43 = bstr of 3 (the protected header follows).
const SIGN1_PREFIX = Uint8Array.of(0xd2, 0x84, 0x43, ...PROTECTED_EDDSA)
// 0xa1 0x04 0x50 = {4: bstr of 16 (the kid follows)}.
const UNPROTECTED_KID_PREFIX = Uint8Array.of(0xa1, 0x04, 0x50)

/**
 * The bytes to sign or verify (RFC 9052 §4.4): the CBOR array
 * ["Signature1", protected, h'' (no external data), payload], where protected and payload
 * are the contents of those byte strings as received.
 */
export function sigStructure (protectedBytes: Uint8Array, payloadBytes: Uint8Array): Uint8Array {
  assertBytes('protectedBytes', protectedBytes)
  assertBytes('payloadBytes', payloadBytes)
  // Written in place: 0x84, "Signature1", bstr protected, h'' (0x40), bstr payload.
  const out = new Uint8Array(
    1 + headLength(SIGNATURE1.length) + SIGNATURE1.length + headLength(protectedBytes.length) + protectedBytes.length +
    1 + headLength(payloadBytes.length) + payloadBytes.length
  )
  out[0] = 0x84
  let pos = writeHead(out, 1, 3, SIGNATURE1.length)
  out.set(SIGNATURE1, pos)
  pos = writeHead(out, pos + SIGNATURE1.length, 2, protectedBytes.length)
  out.set(protectedBytes, pos)
  pos += protectedBytes.length
  out[pos] = 0x40
  pos = writeHead(out, pos + 1, 2, payloadBytes.length)
  out.set(payloadBytes, pos)
  return out
}

/**
 * Wraps envelope bytes (from encodeEnvelope or any encoder) in a COSE_Sign1 signed with
 * sign, kid being the signer's 16-byte id (idBytes of its principal id).
 */
export function signEnvelope (envelopeBytes: Uint8Array, kid: Uint8Array, sign: Signer): Uint8Array {
  assertBytes('envelopeBytes', envelopeBytes)
  assertBytes('kid', kid, ID_BYTES)
  if (typeof sign !== 'function') throw new TypeError(`sign expected a function, got ${describe(sign)}`)
  try {
    walkWhole(envelopeBytes, 0, envelopeBytes.length, { strict: false, depthMax: CBOR_DEPTH_MAX })
  } catch (err) {
    throw new TypeError(`envelopeBytes expected one CBOR item: ${(err as Error).message}`)
  }
  if (envelopeBytes[0] >> 5 !== 5) throw new TypeError('envelopeBytes expected a CBOR map (an unsigned envelope)')
  const signature = sign(sigStructure(PROTECTED_EDDSA, envelopeBytes))
  assertBytes('signature returned by sign', signature, SIGNATURE_BYTES)
  return concatBytes(
    SIGN1_PREFIX,
    UNPROTECTED_KID_PREFIX, kid,
    encodeHead(2, envelopeBytes.length), envelopeBytes,
    encodeHead(2, SIGNATURE_BYTES), signature
  )
}

/** What the hub needs to check and verify a COSE_Sign1 it received. */
export interface CoseSign1 {
  /** Unprotected label 4, as received (empty when absent: it then matches no principal). */
  kid: Uint8Array
  /**
   * Protected label 1 when the protected header is a map holding label 1 alone, as an
   * integer (or text: COSE allows alg names); undefined for any other protected header.
   * checkEnvelope requires -8.
   */
  alg: unknown
  /** The protected header bytes (the bstr's content) as received. */
  protectedBytes: Uint8Array
  /** sigStructure(protected, payload) over the bytes as received: what the signature covers. */
  sigInput: Uint8Array
  /** The signature bytes as received (checkEnvelope requires 64). */
  signature: Uint8Array
}

export type CoseReadResult =
  | { ok: true, cose: CoseSign1, payload: Uint8Array }
  | { ok: false, detail: string }

/** Headers may hold anything; they get the same strict rules as envelope fields. */
const STRICT_PART: WalkOptions = { strict: true, depthMax: BODY_DEPTH_MAX }
const LENIENT_SKIP: WalkOptions = { strict: false, depthMax: Number.MAX_SAFE_INTEGER }

/**
 * Reads the COSE_Sign1 that fills bytes[start, end) (a well-formed item whose head is tag
 * 18). A structure that is not [bstr, map, bstr, bstr] is a failure (`decode` to the
 * caller); header contents are not judged here but by checkEnvelope (`signature`). kid,
 * protectedBytes, signature and payload are views into bytes (copies only for chunked
 * strings), so bytes must not change while they are in use.
 */
export function readCoseSign1 (bytes: Uint8Array, start: number, end: number): CoseReadResult {
  try {
    scanHead(bytes, start, end)
    if (headMajor() !== 6 || headValue() !== COSE_SIGN1_TAG) return { ok: false, detail: 'not a COSE_Sign1 (tag 18)' }
    scanHead(bytes, headNext(), end)
    if (headMajor() !== 4) return { ok: false, detail: 'COSE_Sign1 content is not an array' }
    const indefinite = headInfo() === 31
    const count = headValue() as number
    // Where each of the four parts starts, and its major type.
    let protectedAt = -1
    let unprotectedAt = -1
    let payloadAt = -1
    let signatureAt = -1
    let majors = 0
    let parts = 0
    let pos = headNext()
    for (let i = 0; indefinite ? bytes[pos] !== 0xff : i < count; i++) {
      if (parts === 4) return { ok: false, detail: 'COSE_Sign1 array has more than 4 items' }
      scanHead(bytes, pos, end)
      majors = majors * 8 + headMajor()
      if (parts === 0) protectedAt = pos
      else if (parts === 1) unprotectedAt = pos
      else if (parts === 2) payloadAt = pos
      else signatureAt = pos
      parts++
      pos = walkItem(bytes, pos, end, STRICT_PART)
    }
    if (parts !== 4) return { ok: false, detail: `COSE_Sign1 array has ${parts} items, expected 4` }
    if (((majors >> 9) & 7) !== 2) return { ok: false, detail: 'COSE_Sign1 protected header is not a byte string' }
    if (((majors >> 6) & 7) !== 5) return { ok: false, detail: 'COSE_Sign1 unprotected header is not a map' }
    if (((majors >> 3) & 7) !== 2) return { ok: false, detail: 'COSE_Sign1 payload is not a byte string (detached payloads are not used)' }
    if ((majors & 7) !== 2) return { ok: false, detail: 'COSE_Sign1 signature is not a byte string' }

    let kid: Uint8Array = new Uint8Array(0)
    scanHead(bytes, unprotectedAt, end)
    const mapIndefinite = headInfo() === 31
    const pairs = headValue() as number
    pos = headNext()
    for (let i = 0; mapIndefinite || i < pairs; i++) {
      if (mapIndefinite && bytes[pos] === 0xff) break
      scanHead(bytes, pos, end)
      const isKid = headMajor() === 0 && headValue() === COSE_LABEL_KID
      const valueAt = walkItem(bytes, pos, end, LENIENT_SKIP)
      if (isKid) {
        scanHead(bytes, valueAt, end)
        if (headMajor() !== 2) return { ok: false, detail: 'COSE_Sign1 kid is not a byte string' }
        kid = stringContentAt(bytes, valueAt, end)
      }
      pos = walkItem(bytes, valueAt, end, LENIENT_SKIP)
    }
    const protectedBytes = stringContentAt(bytes, protectedAt, end)
    const payload = stringContentAt(bytes, payloadAt, end)
    const cose: CoseSign1 = {
      kid,
      alg: readAlg(protectedBytes),
      protectedBytes,
      sigInput: sigStructure(protectedBytes, payload),
      signature: stringContentAt(bytes, signatureAt, end),
    }
    return { ok: true, cose, payload }
  } catch (err) {
    if (err instanceof CborScanError) return { ok: false, detail: `COSE_Sign1: ${err.message}` }
    throw err
  }
}

function readAlg (protectedBytes: Uint8Array): unknown {
  if (protectedBytes.length === 3 && protectedBytes[0] === 0xa1 && protectedBytes[1] === 0x01 && protectedBytes[2] === 0x27) {
    return COSE_ALG_EDDSA
  }
  try {
    walkWhole(protectedBytes, 0, protectedBytes.length, { strict: true, depthMax: BODY_DEPTH_MAX })
    const head = readHead(protectedBytes, 0, protectedBytes.length)
    if (head.major !== 5) return undefined
    const entries = mapEntries(protectedBytes, head, protectedBytes.length)
    if (entries.length !== 1 || entries[0].key.major !== 0 || entries[0].key.value !== COSE_LABEL_ALG) return undefined
    const alg = readHead(protectedBytes, entries[0].valueStart, protectedBytes.length)
    if (alg.major === 0) return alg.value
    if (alg.major === 1) return typeof alg.value === 'number' ? -1 - alg.value : -1n - alg.value
    if (alg.major === 3) return utf8Text(stringContent(protectedBytes, alg, protectedBytes.length))
    return undefined
  } catch {
    return undefined
  }
}
