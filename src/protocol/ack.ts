/**
 * Acks (§5, type 70): what the hub (or a service) sends down for an envelope whose sender
 * asked for one. Body {"re": id, "ok", "code", "reason", "result"?}; ok true means code 0
 * and reason "".
 */
import { assertBytes, describe } from './bytes.js'
import { FEATURE_CODE_MIN, ID_BYTES, MessageType, REJECT_CODES, isRejectReason, type RejectReason } from './constants.js'
import { signEnvelope, type Signer } from './cose.js'
import { encodeEnvelope } from './envelope.js'
import { idBytes } from './ids.js'

/** A rejection a feature defines itself, numbered from FEATURE_CODE_MIN (100) up. */
export interface FeatureReason {
  code: number
  reason: string
}

export interface AckBody {
  re: Uint8Array
  ok: boolean
  code: number
  reason: string
  result?: unknown
}

const FEATURE_REASON_CHARS_MAX = 64

/**
 * The body of an Ack for the envelope id re: a success without reason, a rejection with a
 * RejectReason (code from REJECT_CODES) or a FeatureReason (code ≥ 100, non-empty reason).
 * result is any encodable value, left out when undefined.
 */
export function ackBody (re: Uint8Array, reason?: RejectReason | FeatureReason, result?: unknown): AckBody {
  assertBytes('re', re, ID_BYTES)
  const body: AckBody = { re, ...status(reason) }
  if (result !== undefined) body.result = result
  return body
}

function status (reason: RejectReason | FeatureReason | undefined): { ok: boolean, code: number, reason: string } {
  if (reason === undefined) return { ok: true, code: 0, reason: '' }
  if (isRejectReason(reason)) return { ok: false, code: REJECT_CODES[reason], reason }
  if (typeof reason === 'object' && reason !== null) {
    const { code, reason: text } = reason
    if (!Number.isSafeInteger(code) || code < FEATURE_CODE_MIN) {
      throw new TypeError(`reason.code expected an integer of at least ${FEATURE_CODE_MIN} (lower codes are §5's), got ${String(code)}`)
    }
    if (typeof text !== 'string' || text.length === 0 || text.length > FEATURE_REASON_CHARS_MAX) {
      throw new TypeError(`reason.reason expected a text of 1 to ${FEATURE_REASON_CHARS_MAX} characters`)
    }
    return { ok: false, code, reason: text }
  }
  throw new TypeError(`reason expected a RejectReason, { code, reason } or undefined, got ${typeof reason === 'string' ? `"${reason}"` : describe(reason)}`)
}

export interface AckInput {
  /** The id of the envelope acknowledged (ParsedItem.ackRe, or the envelope's id). */
  re: Uint8Array
  /** The hub node's principal id: the Ack's src (and kid when signed). */
  hubId: string
  /** The device's principal id: the Ack's dst. */
  dst: string
  /**
   * Absent (or "") for success; otherwise why the envelope was refused: a RejectReason, a
   * FeatureReason, or a feature's reason text with its code in `code`.
   */
  reason?: RejectReason | FeatureReason | string
  /** For callers that think in code/reason: 0 for success, the reason's code otherwise (checked). */
  code?: number
  /** For callers that think in ok: must agree with reason. */
  ok?: boolean
  /** What the request produced, for types that have a result. */
  result?: unknown
  /** Sign the Ack with the hub's key (COSE_Sign1, kid = idBytes(hubId)). */
  sign?: Signer
  /** The Ack envelope's own id; 16 random bytes when absent. */
  id?: Uint8Array
  /** The Ack envelope's ts; now when absent. */
  ts?: number
}

/** The bytes of an Ack envelope (type 70, src hubId, dst the device), signed when sign is given. */
export function encodeAck (input: AckInput): Uint8Array {
  if (typeof input !== 'object' || input === null) throw new TypeError(`input expected an object, got ${describe(input)}`)
  const body = ackBody(input.re, ackReason(input), input.result)
  if (input.ok !== undefined && input.ok !== body.ok) {
    throw new TypeError(`ok ${String(input.ok)} disagrees with reason ${body.ok ? '(none: success)' : JSON.stringify(body.reason)}`)
  }
  if (input.code !== undefined && input.code !== body.code) {
    throw new TypeError(`code ${String(input.code)} disagrees with reason ${body.ok ? '(none: success)' : JSON.stringify(body.reason)} (code ${body.code})`)
  }
  const envelope = encodeEnvelope({
    type: MessageType.Ack,
    src: input.hubId,
    dst: input.dst,
    body,
    ...(input.id !== undefined ? { id: input.id } : {}),
    ...(input.ts !== undefined ? { ts: input.ts } : {}),
  })
  if (input.sign === undefined) return envelope
  return signEnvelope(envelope, idBytes(input.hubId), input.sign)
}

/** AckInput's reason (and code, for a feature's reason text) as ackBody takes it. */
function ackReason (input: AckInput): RejectReason | FeatureReason | undefined {
  const { reason, code } = input
  if (reason === undefined || reason === '') return undefined
  if (typeof reason === 'string' && !isRejectReason(reason)) {
    if (code === undefined) throw new TypeError(`reason "${reason}" is not a RejectReason: give its feature code (≥ ${FEATURE_CODE_MIN}) in code`)
    return { code, reason }
  }
  return reason
}
