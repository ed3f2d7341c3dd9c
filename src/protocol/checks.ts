/**
 * checkEnvelope: the checks of §4 that need to know who sent the payload and when it
 * arrived (src, skew, unsigned, the COSE header), in that order, after parsePayload's.
 * Verifying the signature (over item.cose.sigInput with the principal's key), replay and
 * the body follow, in that order, and are the receiver's.
 */
import { equalBytes } from './bytes.js'
import { COSE_ALG_EDDSA, MUST_SIGN_TYPES, MessageType, type RejectReason } from './constants.js'
import { SIGNATURE_BYTES } from './cose.js'
import type { ParsedItem } from './decode.js'
import { assertPrincipalId, idBytes } from './ids.js'

export { validateBody, bodyProblem } from './body.js'

export interface CheckContext {
  /** The authenticated sender: the MQTT client's principal id (the hub's id, for a device reading its down topic). */
  principalId: string
  /** The receiver's clock, ms since the Unix epoch. */
  nowMs: number
  /** Allowed |ts - nowMs|, in ms. */
  skewMs: number
}

/** Priorities 0 (critical) and 1 (high) must be signed (§4). */
const SIGNED_PRIO_MAX = 1

/**
 * The first rejection among src, skew, unsigned and signature (COSE header: alg -8, kid =
 * the principal's id bytes, a 64-byte signature), or null when the item passes them. An
 * item that parsePayload already rejected gets its reason back, so that callers can run
 * the checks in one line.
 */
export function checkEnvelope (item: ParsedItem, context: CheckContext): RejectReason | null {
  if (typeof item !== 'object' || item === null) throw new TypeError('item expected a ParsedItem from parsePayload')
  if (typeof context !== 'object' || context === null) throw new TypeError('context expected { principalId, nowMs, skewMs }')
  const { principalId, nowMs, skewMs } = context
  assertPrincipalId('principalId', principalId)
  if (!Number.isFinite(nowMs)) throw new TypeError(`nowMs expected a finite number, got ${String(nowMs)}`)
  if (!Number.isFinite(skewMs) || skewMs < 0) throw new TypeError(`skewMs expected a non-negative number, got ${String(skewMs)}`)
  if (item.reason !== undefined) return item.reason
  const envelope = item.envelope
  if (envelope === undefined) throw new TypeError('item expected an envelope or a reason (a ParsedItem from parsePayload)')

  if (envelope.src !== principalId) return 'src'
  if (Math.abs(envelope.ts - nowMs) > skewMs) return 'skew'
  if (!item.signed) {
    const mustSign = envelope.prio <= SIGNED_PRIO_MAX || MUST_SIGN_TYPES.has(envelope.type)
    // A TokenClaim's zero-knowledge proof is its authority (§4): it never needs a signature.
    if (mustSign && envelope.type !== MessageType.TokenClaim) return 'unsigned'
    return null
  }
  const cose = item.cose
  if (cose === undefined) throw new TypeError('item is signed but has no cose (a ParsedItem from parsePayload)')
  if (cose.alg !== COSE_ALG_EDDSA) return 'signature'
  if (!equalBytes(cose.kid, idBytes(principalId))) return 'signature'
  if (cose.signature.length !== SIGNATURE_BYTES) return 'signature'
  return null
}
