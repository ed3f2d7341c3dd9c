/**
 * Reads one envelope map from untrusted bytes: the `decode` step of §4 for one envelope.
 * Fields are read with their true CBOR major types from the walker's heads, so an integer
 * written as a float, a negative ts or a 15-byte id is caught however the sender's encoder
 * behaves, and integers of every width are accepted.
 *
 * This is the hub's per-message hot path, so it walks each field once, builds no object
 * per field, and hands out views into the input rather than copies (the id, and the body's
 * bytes when they can be spliced into a bridge record as they are).
 */
import { asciiOrUtf8Text } from './bytes.js'
import { decodeScanned } from './cbor.js'
import {
  headInfo, headMajor, headNext, headValue, newScanStats, resetScanStats, scanHead, stringContentAt, walkItem, walkWhole,
  type ScanStats, type WalkOptions,
} from './cbor-scan.js'
import { inflateRawBounded } from './compression.js'
import {
  BODY_DEPTH_MAX, CBOR_DEPTH_MAX, ENC_DEFLATE, EnvelopeKey, ID_BYTES, PRIO_DEFAULT, PRIO_MAX, type RejectReason,
} from './constants.js'
import type { Envelope } from './envelope.js'

/** Where readEnvelope puts what it found (parsePayload's ParsedItem has these fields). */
export interface EnvelopeReadTarget {
  reason?: RejectReason
  detail?: string
  envelope?: Envelope
  ackRe?: Uint8Array
  bodyBytes?: Uint8Array
}

/** Keys of §4 that must be present, in the order their absence is reported. */
const REQUIRED_KEYS = [EnvelopeKey.v, EnvelopeKey.type, EnvelopeKey.id, EnvelopeKey.src, EnvelopeKey.ts]
const REQUIRED_NAMES = ['v', 'type', 'id', 'src', 'ts']

/** Keys 0..KNOWN_KEYS-1 are tracked in an array; any other integer key goes to a Set. */
const KNOWN_KEYS = EnvelopeKey.ack + 1
/** Where each known key's value starts in the input, or -1 when the key is absent. */
const fieldStart = new Int32Array(KNOWN_KEYS)

const LENIENT_ENVELOPE: WalkOptions = { strict: false, depthMax: CBOR_DEPTH_MAX }
/** As mapEntries walked keys and values to find where they end: well-formedness only, no depth bound. */
const LENIENT_SKIP: WalkOptions = { strict: false, depthMax: Number.MAX_SAFE_INTEGER }
const STRICT_FIELD: WalkOptions = { strict: true, depthMax: BODY_DEPTH_MAX }
const bodyStats: ScanStats = newScanStats()
const STRICT_BODY: WalkOptions = { strict: true, depthMax: BODY_DEPTH_MAX, stats: bodyStats }

/**
 * Reads the envelope map that fills bytes[start, end) into target: either `envelope` (and
 * `bodyBytes` when the body's bytes are what encodeCbor would write for it), or `reason`
 * (`decode`, or `too_large` for a body inflating past payloadBytesMax), `detail` and, when
 * the sender asked for an Ack and id and ack could be read, `ackRe`. Never throws for bad
 * input. `walked`: the caller has already walked these bytes leniently as part of a larger
 * item within CBOR_DEPTH_MAX (parsePayload's walk of the payload), so that walk, which
 * could not fail, is skipped.
 */
export function readEnvelope (target: EnvelopeReadTarget, bytes: Uint8Array, start: number, end: number, payloadBytesMax: number, walked: boolean): void {
  if (!walked) {
    try {
      walkWhole(bytes, start, end, LENIENT_ENVELOPE)
    } catch (err) {
      decodeError(target, `envelope is not one well-formed CBOR item: ${errorMessage(err)}`, undefined)
      return
    }
  }
  scanHead(bytes, start, end)
  if (headMajor() !== 5) {
    decodeError(target, `envelope is a CBOR major type ${headMajor()}, not a map`, undefined)
    return
  }
  const indefinite = headInfo() === 31
  const count = headValue() as number

  // One pass over the entries. Keys: integers only, each once; unknown integer keys are
  // ignored. Values of the keys kept (the first of each integer key) are walked strictly
  // (no tags but bignums, no undefined, UTF-8, no duplicate keys, bounded nesting); the
  // others only to find where they end. A key problem outranks a value problem wherever
  // each is, and the first value problem in wire order is the one reported.
  fieldStart.fill(-1)
  let others: Set<number> | null = null
  let problem: string | null = null
  let duplicated = false
  let valueProblem: string | null = null
  let bodyEnd = -1
  resetScanStats(bodyStats)
  let pos = headNext()
  for (let i = 0; indefinite || i < count; i++) {
    if (indefinite && bytes[pos] === 0xff) break
    scanHead(bytes, pos, end)
    const keyMajor = headMajor()
    const keyArgument = headValue()
    const valueStart = keyMajor === 0 || keyMajor === 1 ? headNext() : walkItem(bytes, pos, end, LENIENT_SKIP)
    let key = -1
    let kept = false
    if (keyMajor !== 0 && keyMajor !== 1) {
      problem ??= `envelope key of CBOR major type ${keyMajor}: keys are integers`
    } else if (typeof keyArgument === 'number') {
      // An integer key beyond 2^53 in size is unknown, so ignored like any unknown key.
      key = keyMajor === 0 ? keyArgument : -1 - keyArgument
      if (key >= 0 && key < KNOWN_KEYS) {
        if (fieldStart[key] !== -1) {
          problem ??= `envelope key ${key} appears twice`
          duplicated = true
        } else {
          fieldStart[key] = valueStart
          kept = true
        }
      } else {
        others ??= new Set()
        if (others.has(key)) {
          problem ??= `envelope key ${key} appears twice`
          duplicated = true
        } else {
          others.add(key)
          kept = true
        }
      }
    }
    let valueEnd: number
    if (kept && problem === null && valueProblem === null) {
      try {
        valueEnd = walkItem(bytes, valueStart, end, key === EnvelopeKey.body ? STRICT_BODY : STRICT_FIELD)
      } catch (err) {
        valueProblem = `envelope key ${key}: ${errorMessage(err)}`
        valueEnd = walkItem(bytes, valueStart, end, LENIENT_SKIP)
      }
    } else {
      valueEnd = walkItem(bytes, valueStart, end, LENIENT_SKIP)
    }
    if (kept && key === EnvelopeKey.body) bodyEnd = valueEnd
    pos = valueEnd
  }
  if (problem !== null) return decodeError(target, problem, duplicated ? undefined : readAckRe(bytes, end))
  const ackRe = readAckRe(bytes, end)
  if (valueProblem !== null) return decodeError(target, valueProblem, ackRe)
  for (let i = 0; i < REQUIRED_KEYS.length; i++) {
    if (fieldStart[REQUIRED_KEYS[i]] === -1) return decodeError(target, `envelope lacks key ${REQUIRED_KEYS[i]} (${REQUIRED_NAMES[i]})`, ackRe)
  }

  scanHead(bytes, fieldStart[EnvelopeKey.v], end)
  if (headMajor() !== 0) return decodeError(target, wrongType('v', 'an unsigned integer'), ackRe)
  const v = Number(headValue())
  scanHead(bytes, fieldStart[EnvelopeKey.type], end)
  if (headMajor() !== 0) return decodeError(target, wrongType('type', 'an unsigned integer'), ackRe)
  const type = Number(headValue())
  const idAt = fieldStart[EnvelopeKey.id]
  scanHead(bytes, idAt, end)
  if (headMajor() !== 2) return decodeError(target, wrongType('id', 'a byte string'), ackRe)
  const id = stringContentAt(bytes, idAt, end)
  if (id.length !== ID_BYTES) return decodeError(target, `id is ${id.length} bytes, expected ${ID_BYTES}`, ackRe)
  const srcAt = fieldStart[EnvelopeKey.src]
  scanHead(bytes, srcAt, end)
  if (headMajor() !== 3) return decodeError(target, wrongType('src', 'a text string'), ackRe)
  const dstAt = fieldStart[EnvelopeKey.dst]
  if (dstAt !== -1) {
    scanHead(bytes, dstAt, end)
    if (headMajor() !== 3) return decodeError(target, wrongType('dst', 'a text string'), ackRe)
  }
  scanHead(bytes, fieldStart[EnvelopeKey.ts], end)
  if (headMajor() !== 0) return decodeError(target, wrongType('ts', 'an unsigned integer'), ackRe)
  const ts = Number(headValue())
  let prio = PRIO_DEFAULT
  if (fieldStart[EnvelopeKey.prio] !== -1) {
    scanHead(bytes, fieldStart[EnvelopeKey.prio], end)
    if (headMajor() !== 0) return decodeError(target, wrongType('prio', 'an unsigned integer'), ackRe)
    const value = headValue()
    if (typeof value !== 'number' || value > PRIO_MAX) return decodeError(target, `prio ${value} is outside 0-${PRIO_MAX}`, ackRe)
    prio = value
  }
  let enc: 0 | 1 = 0
  if (fieldStart[EnvelopeKey.enc] !== -1) {
    scanHead(bytes, fieldStart[EnvelopeKey.enc], end)
    if (headMajor() !== 0) return decodeError(target, wrongType('enc', 'an unsigned integer'), ackRe)
    const value = headValue()
    if (value !== 0 && value !== 1) return decodeError(target, `enc ${value} is outside 0-1`, ackRe)
    enc = value
  }
  let ack = false
  if (fieldStart[EnvelopeKey.ack] !== -1) {
    scanHead(bytes, fieldStart[EnvelopeKey.ack], end)
    const info = headInfo()
    if (headMajor() !== 7 || (info !== 20 && info !== 21)) return decodeError(target, wrongType('ack', 'a boolean'), ackRe)
    ack = info === 21
  }

  let body: unknown
  let bodyBytes: Uint8Array | undefined
  const bodyAt = fieldStart[EnvelopeKey.body]
  if (enc === ENC_DEFLATE) {
    if (bodyAt === -1) return decodeError(target, 'enc is 1 but there is no body', ackRe)
    scanHead(bytes, bodyAt, end)
    if (headMajor() !== 2) return decodeError(target, wrongType('body (enc 1)', 'a byte string'), ackRe)
    const inflated = inflateRawBounded(stringContentAt(bytes, bodyAt, end), payloadBytesMax)
    if (!inflated.ok) {
      // A body inflating past the limit is dropped like an oversized payload: no Ack (§4).
      if (inflated.reason === 'too_large') {
        target.reason = 'too_large'
        target.detail = inflated.detail
        return
      }
      return decodeError(target, inflated.detail, ackRe)
    }
    const innerStats = newScanStats()
    try {
      walkWhole(inflated.bytes, 0, inflated.bytes.length, { strict: true, depthMax: BODY_DEPTH_MAX, stats: innerStats })
    } catch (err) {
      return decodeError(target, `inflated body: ${errorMessage(err)}`, ackRe)
    }
    try {
      body = decodeScanned(inflated.bytes, innerStats)
    } catch (err) {
      return decodeError(target, `body: ${errorMessage(err)}`, ackRe)
    }
    if (innerStats.asEncoded) bodyBytes = inflated.bytes
  } else if (bodyAt !== -1) {
    const raw = bytes.subarray(bodyAt, bodyEnd)
    try {
      body = decodeScanned(raw, bodyStats)
    } catch (err) {
      // cbor-x should accept whatever the strict walk accepted; should it not, that is a
      // decode error, not a crash.
      return decodeError(target, `body: ${errorMessage(err)}`, ackRe)
    }
    if (bodyStats.asEncoded) bodyBytes = raw
  }

  const envelope: Envelope = {
    v,
    type,
    id,
    src: textContent(bytes, srcAt, end),
    ts,
    prio,
    enc,
    ack,
  }
  if (dstAt !== -1) envelope.dst = textContent(bytes, dstAt, end)
  if (body !== undefined) envelope.body = body
  target.envelope = envelope
  if (bodyBytes !== undefined) target.bodyBytes = bodyBytes
}

/**
 * The id to acknowledge: key 2 when key 13 is exactly `true` and key 2 is a 16-byte bstr.
 * Read from the first occurrence of each key; the caller leaves it out when a key repeats.
 */
function readAckRe (bytes: Uint8Array, end: number): Uint8Array | undefined {
  const ackAt = fieldStart[EnvelopeKey.ack]
  const idAt = fieldStart[EnvelopeKey.id]
  if (ackAt === -1 || idAt === -1) return undefined
  if (bytes[ackAt] !== 0xf5) return undefined
  try {
    scanHead(bytes, idAt, end)
    if (headMajor() !== 2) return undefined
    const id = stringContentAt(bytes, idAt, end)
    return id.length === ID_BYTES ? id : undefined
  } catch {
    return undefined
  }
}

/** The text of the (walked, valid UTF-8) text string at pos. */
function textContent (bytes: Uint8Array, pos: number, end: number): string {
  scanHead(bytes, pos, end)
  if (headInfo() !== 31) {
    const next = headNext()
    return asciiOrUtf8Text(bytes, next, next + (headValue() as number))
  }
  const joined = stringContentAt(bytes, pos, end)
  return asciiOrUtf8Text(joined, 0, joined.length)
}

/** What the last head scanned is, for a wrong-type message. */
function wrongType (name: string, expected: string): string {
  const major = headMajor()
  const info = headInfo()
  const what = major === 7 && info >= 25 && info <= 27 ? 'a float' : `CBOR major type ${major}`
  return `${name} is ${what}, expected ${expected}`
}

function errorMessage (err: unknown): string {
  return err instanceof Error ? err.message : String(err)
}

function decodeError (target: EnvelopeReadTarget, detail: string, ackRe: Uint8Array | undefined): void {
  target.reason = 'decode'
  target.detail = detail
  if (ackRe !== undefined) target.ackRe = ackRe
}
