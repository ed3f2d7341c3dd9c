/**
 * Checking a sender's own signature on an envelope, end to end: what a service does with
 * a bridge record's `raw` bytes (protocol-v1 §6), or a device with a signed command.
 */
import { equalBytes, idBytes, parsePayload, principalIdFromPublicKey } from '../src/protocol/index.js'
import { publicKeyBytes, verify } from './keys.js'

const ALG_EDDSA = -8

/**
 * True when `raw` is one COSE_Sign1 envelope (§4) signed by the holder of `publicKey`:
 * the kid and the envelope's src are that key's principal id, the alg is EdDSA, and the
 * signature verifies over the bytes as they are. False for anything else, unsigned
 * envelopes included; never throws on untrusted bytes.
 */
export function verifyEnvelope (raw: Uint8Array, publicKey: Uint8Array | string, direction: 'up' | 'down' = 'up'): boolean {
  const key = publicKeyBytes(publicKey)
  const parsed = parsePayload(raw, { payloadBytesMax: raw.length, direction })
  if (!parsed.ok || parsed.batch || parsed.items.length !== 1) return false
  const item = parsed.items[0]
  if (!item.signed || !item.cose || !item.envelope) return false
  const id = principalIdFromPublicKey(key)
  if (item.envelope.src !== id || item.cose.alg !== ALG_EDDSA || !equalBytes(item.cose.kid, idBytes(id))) return false
  return verify(item.cose.signature, item.cose.sigInput, key)
}
