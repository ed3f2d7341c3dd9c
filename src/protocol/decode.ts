/**
 * parsePayload: the checks of §4 that need no context (size, decode, version, type), for
 * one MQTT payload: an envelope, a COSE_Sign1 or a batch of those. What follows (src,
 * skew, unsigned, the COSE header) is checkEnvelope's; signature verification, replay and
 * the body are the receiver's, in that order.
 *
 * Untrusted bytes never make it throw: every problem becomes a reason.
 */
import { describe, plainView } from './bytes.js'
import { headInfo, headMajor, headValue, scanHead, walkWholeSplit, type WalkOptions } from './cbor-scan.js'
import {
  BATCH_ITEMS_MAX, CBOR_DEPTH_MAX, COSE_SIGN1_TAG, DOWN_TYPES, PROTOCOL_VERSION, UP_TYPES, type Direction, type RejectReason,
} from './constants.js'
import { readCoseSign1, type CoseSign1 } from './cose.js'
import type { Envelope } from './envelope.js'
import { readEnvelope } from './envelope-read.js'

export type { Direction }

export interface ParseOptions {
  /** Largest payload accepted, in bytes; also bounds every inflated body. */
  payloadBytesMax: number
  /** 'up': a device's up topic (the hub reads it); 'down': a device's down topic (the device reads it). */
  direction: Direction
}

/** One envelope of a payload, with what parsePayload found. */
export interface ParsedItem {
  /** The item's bytes exactly as received (the whole COSE_Sign1 when signed): bridge key 12. */
  raw: Uint8Array
  /** The item is a COSE_Sign1 (not yet verified: see cose and checkEnvelope). */
  signed: boolean
  /** Set when the item is rejected: `decode`, `too_large`, `version` or `type`. */
  reason?: RejectReason
  /** What was wrong, for logs (never sent to the device). */
  detail?: string
  /** Every field read with its right type: present with no reason, and with `version` or `type`. */
  envelope?: Envelope
  /**
   * The id to put in the Ack's `re`, present when the sender asked for an Ack (key 13) and
   * its id could be read, even when other fields could not. Never present with `too_large`:
   * such items are dropped without an Ack (§4).
   */
  ackRe?: Uint8Array
  /** Present when the item is a well-formed COSE_Sign1. */
  cose?: CoseSign1
  /**
   * The body's CBOR, present with `envelope` when those bytes are exactly what encodeCbor
   * writes for `envelope.body` (ScanStats.asEncoded; for enc 1, the inflated bytes): pass it
   * to encodeBridgeRecord, which then splices it instead of encoding the body again. A view
   * into the payload, not a copy: the payload must not be changed while it is in use.
   */
  bodyBytes?: Uint8Array
}

export type ParseResult =
  | { ok: false, reason: 'too_large' | 'decode', detail: string }
  | { ok: true, batch: boolean, items: ParsedItem[] }

/**
 * Splits and reads a payload. The whole payload is refused (`too_large` over
 * payloadBytesMax or for a batch of more than 256 items; `decode` when it is not one
 * well-formed CBOR item, is neither a map, tag 18 nor an array, or is an empty batch);
 * otherwise each item is judged on its own and carries its reason, if any.
 */
export function parsePayload (bytes: Uint8Array, options: ParseOptions): ParseResult {
  if (!(bytes instanceof Uint8Array)) throw new TypeError(`bytes expected Uint8Array, got ${describe(bytes)}`)
  if (typeof options !== 'object' || options === null) throw new TypeError(`options expected an object, got ${describe(options)}`)
  const { payloadBytesMax, direction } = options
  if (!Number.isSafeInteger(payloadBytesMax) || payloadBytesMax <= 0) {
    throw new TypeError(`payloadBytesMax expected a positive integer, got ${String(payloadBytesMax)}`)
  }
  if (direction !== 'up' && direction !== 'down') throw new TypeError(`direction expected 'up' or 'down', got ${String(direction)}`)

  if (bytes.length > payloadBytesMax) {
    return { ok: false, reason: 'too_large', detail: `payload of ${bytes.length} bytes is over ${payloadBytesMax}` }
  }
  const view = plainView(bytes)
  try {
    // One walk checks the whole payload and, for a batch, finds where its items are.
    walkWholeSplit(view, view.length, PAYLOAD_WALK, spans)
  } catch (err) {
    return { ok: false, reason: 'decode', detail: `payload is not one well-formed CBOR item: ${(err as Error).message}` }
  }
  scanHead(view, 0, view.length)
  const major = headMajor()
  const info = headInfo()
  const value = headValue()
  const allowed = direction === 'up' ? UP_TYPES : DOWN_TYPES
  if (major === 4) {
    if (info !== 31 && (value as number) > BATCH_ITEMS_MAX) {
      return { ok: false, reason: 'too_large', detail: `batch of ${value} items is over ${BATCH_ITEMS_MAX}` }
    }
    const count = spans.length / 2
    if (count === 0) return { ok: false, reason: 'decode', detail: 'empty batch' }
    if (count > BATCH_ITEMS_MAX) {
      return { ok: false, reason: 'too_large', detail: `batch of ${count} items is over ${BATCH_ITEMS_MAX}` }
    }
    const items = new Array<ParsedItem>(count)
    for (let i = 0; i < count; i++) items[i] = parseItem(view, spans[2 * i], spans[2 * i + 1], payloadBytesMax, allowed, true)
    return { ok: true, batch: true, items }
  }
  if (major === 5 || (major === 6 && value === COSE_SIGN1_TAG)) {
    return { ok: true, batch: false, items: [parseItem(view, 0, view.length, payloadBytesMax, allowed, major === 5)] }
  }
  return {
    ok: false,
    reason: 'decode',
    detail: `payload is CBOR major type ${major}${major === 6 ? ` (tag ${value})` : ''}: expected an envelope map, a COSE_Sign1 (tag 18) or a batch array`,
  }
}

const PAYLOAD_WALK: WalkOptions = { strict: false, depthMax: CBOR_DEPTH_MAX }
/** The [start, end) offsets of a batch's items, filled by walkWholeSplit. */
const spans: number[] = []

/**
 * One envelope or COSE_Sign1 at bytes[start, end). `walked`: an unsigned envelope's bytes
 * were walked with the payload, so readEnvelope need not walk them again.
 */
function parseItem (bytes: Uint8Array, start: number, end: number, payloadBytesMax: number, allowed: ReadonlySet<number>, walked: boolean): ParsedItem {
  const raw = bytes.subarray(start, end)
  scanHead(bytes, start, end)
  const major = headMajor()
  const value = headValue()
  const signed = major === 6 && value === COSE_SIGN1_TAG
  const item: ParsedItem = { raw, signed }
  try {
    if (signed) {
      const sign1 = readCoseSign1(bytes, start, end)
      if (!sign1.ok) {
        item.reason = 'decode'
        item.detail = sign1.detail
        return item
      }
      item.cose = sign1.cose
      // Offsets in details are the COSE payload's own, as a sender would count them.
      readEnvelope(item, sign1.payload, 0, sign1.payload.length, payloadBytesMax, false)
    } else if (major === 5) {
      readEnvelope(item, bytes, start, end, payloadBytesMax, walked)
    } else {
      const what = major === 6 ? `tag ${value}` : `CBOR major type ${major}`
      item.reason = 'decode'
      item.detail = `batch item is ${what}: expected an envelope map or a COSE_Sign1 (tag 18)`
      return item
    }
    const envelope = item.envelope
    if (item.reason !== undefined || envelope === undefined) return item
    if (envelope.ack) item.ackRe = envelope.id
    if (envelope.v !== PROTOCOL_VERSION) {
      item.reason = 'version'
      item.detail = `protocol version ${envelope.v} is not ${PROTOCOL_VERSION}`
    } else if (!allowed.has(envelope.type)) {
      item.reason = 'type'
      item.detail = `message type ${envelope.type} is unknown or not allowed in this direction`
    }
    return item
  } catch (err) {
    // The readers return their findings rather than throw; reaching this is a bug, and bytes
    // from the wire still must not crash the receiver.
    return { raw, signed, reason: 'decode', detail: `internal error (${(err as Error).name}): ${(err as Error).message}` }
  }
}
