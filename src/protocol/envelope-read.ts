/**
 * Reads one envelope map from untrusted bytes: the `decode` step of §4 for one envelope.
 * Fields are read with their true CBOR major types from the walker's heads, so an integer
 * written as a float, a negative ts or a 15-byte id is caught however the sender's encoder
 * behaves, and integers of every width are accepted.
 */
import { copyBytes, utf8Text } from './bytes.js'
import { decodeScanned } from './cbor.js'
import {
  mapEntries, newScanStats, readHead, stringContent, walkItem, walkWhole, type Head, type MapEntry, type ScanStats,
} from './cbor-scan.js'
import { inflateRawBounded } from './compression.js'
import { BODY_DEPTH_MAX, CBOR_DEPTH_MAX, ENC_DEFLATE, EnvelopeKey, ID_BYTES, PRIO_DEFAULT, PRIO_MAX } from './constants.js'
import type { Envelope } from './envelope.js'

export type EnvelopeReadResult =
  | { ok: true, envelope: Envelope }
  | {
    ok: false
    reason: 'decode' | 'too_large'
    /** What was wrong, for logs. */
    detail: string
    /** The id to acknowledge, when the sender asked for an Ack and id and ack could be read. */
    ackRe?: Uint8Array
  }

/** Keys of §4 that must be present. */
const REQUIRED: ReadonlyArray<[number, string]> = [
  [EnvelopeKey.v, 'v'], [EnvelopeKey.type, 'type'], [EnvelopeKey.id, 'id'], [EnvelopeKey.src, 'src'], [EnvelopeKey.ts, 'ts'],
]

/**
 * Reads the envelope map that fills bytes[start, end). Never throws for bad input: every
 * problem is a `decode` (or `too_large` for a body inflating past payloadBytesMax).
 */
export function readEnvelope (bytes: Uint8Array, start: number, end: number, payloadBytesMax: number): EnvelopeReadResult {
  try {
    walkWhole(bytes, start, end, { strict: false, depthMax: CBOR_DEPTH_MAX })
  } catch (err) {
    return decodeError(`envelope is not one well-formed CBOR item: ${errorMessage(err)}`)
  }
  const head = readHead(bytes, start, end)
  if (head.major !== 5) return decodeError(`envelope is a CBOR major type ${head.major}, not a map`)

  // Pass 1: keys. Integer keys only, each once; unknown integer keys are ignored.
  const fields = new Map<number, MapEntry>()
  let problem: string | null = null
  let duplicated = false
  for (const entry of mapEntries(bytes, head, end)) {
    const { key } = entry
    if (key.major !== 0 && key.major !== 1) {
      problem ??= `envelope key of CBOR major type ${key.major}: keys are integers`
      continue
    }
    // An integer key beyond 2^53 in size is unknown, so ignored like any unknown key.
    if (typeof key.value !== 'number') continue
    const value = key.major === 0 ? key.value : -1 - key.value
    if (fields.has(value)) {
      problem ??= `envelope key ${value} appears twice`
      duplicated = true
      continue
    }
    fields.set(value, entry)
  }
  const ackRe = duplicated ? undefined : readAckRe(bytes, end, fields)
  if (problem !== null) return decodeError(problem, ackRe)

  // Pass 2: every value is walked strictly (no tags but bignums, no undefined, UTF-8, no
  // duplicate keys, bounded nesting), then read by the rules of its key.
  const stats = newScanStats()
  for (const [key, entry] of fields) {
    try {
      walkItem(bytes, entry.valueStart, end, { strict: true, depthMax: BODY_DEPTH_MAX, stats: key === EnvelopeKey.body ? stats : undefined })
    } catch (err) {
      return decodeError(`envelope key ${key}: ${errorMessage(err)}`, ackRe)
    }
  }
  for (const [key, name] of REQUIRED) {
    if (!fields.has(key)) return decodeError(`envelope lacks key ${key} (${name})`, ackRe)
  }
  const value = (key: number): Head | undefined => {
    const entry = fields.get(key)
    return entry === undefined ? undefined : readHead(bytes, entry.valueStart, end)
  }

  const v = value(EnvelopeKey.v) as Head
  if (v.major !== 0) return decodeError(wrongType('v', 'an unsigned integer', v), ackRe)
  const type = value(EnvelopeKey.type) as Head
  if (type.major !== 0) return decodeError(wrongType('type', 'an unsigned integer', type), ackRe)
  const idHead = value(EnvelopeKey.id) as Head
  if (idHead.major !== 2) return decodeError(wrongType('id', 'a byte string', idHead), ackRe)
  const id = stringContent(bytes, idHead, end)
  if (id.length !== ID_BYTES) return decodeError(`id is ${id.length} bytes, expected ${ID_BYTES}`, ackRe)
  const srcHead = value(EnvelopeKey.src) as Head
  if (srcHead.major !== 3) return decodeError(wrongType('src', 'a text string', srcHead), ackRe)
  const dstHead = value(EnvelopeKey.dst)
  if (dstHead !== undefined && dstHead.major !== 3) return decodeError(wrongType('dst', 'a text string', dstHead), ackRe)
  const ts = value(EnvelopeKey.ts) as Head
  if (ts.major !== 0) return decodeError(wrongType('ts', 'an unsigned integer', ts), ackRe)
  const prioHead = value(EnvelopeKey.prio)
  let prio = PRIO_DEFAULT
  if (prioHead !== undefined) {
    if (prioHead.major !== 0) return decodeError(wrongType('prio', 'an unsigned integer', prioHead), ackRe)
    if (typeof prioHead.value !== 'number' || prioHead.value > PRIO_MAX) return decodeError(`prio ${prioHead.value} is outside 0-${PRIO_MAX}`, ackRe)
    prio = prioHead.value
  }
  const encHead = value(EnvelopeKey.enc)
  let enc: 0 | 1 = 0
  if (encHead !== undefined) {
    if (encHead.major !== 0) return decodeError(wrongType('enc', 'an unsigned integer', encHead), ackRe)
    if (encHead.value !== 0 && encHead.value !== 1) return decodeError(`enc ${encHead.value} is outside 0-1`, ackRe)
    enc = encHead.value
  }
  const ackHead = value(EnvelopeKey.ack)
  let ack = false
  if (ackHead !== undefined) {
    if (ackHead.major !== 7 || (ackHead.info !== 20 && ackHead.info !== 21)) return decodeError(wrongType('ack', 'a boolean', ackHead), ackRe)
    ack = ackHead.info === 21
  }

  let body: unknown
  const bodyEntry = fields.get(EnvelopeKey.body)
  if (enc === ENC_DEFLATE) {
    if (bodyEntry === undefined) return decodeError('enc is 1 but there is no body', ackRe)
    const bodyHead = readHead(bytes, bodyEntry.valueStart, end)
    if (bodyHead.major !== 2) return decodeError(wrongType('body (enc 1)', 'a byte string', bodyHead), ackRe)
    const inflated = inflateRawBounded(stringContent(bytes, bodyHead, end), payloadBytesMax)
    // A body inflating past the limit is dropped like an oversized payload: no Ack (§4).
    if (!inflated.ok) return inflated.reason === 'too_large' ? { ok: false, reason: 'too_large', detail: inflated.detail } : decodeError(inflated.detail, ackRe)
    const innerStats = newScanStats()
    try {
      walkWhole(inflated.bytes, 0, inflated.bytes.length, { strict: true, depthMax: BODY_DEPTH_MAX, stats: innerStats })
    } catch (err) {
      return decodeError(`inflated body: ${errorMessage(err)}`, ackRe)
    }
    const decoded = decodeBody(inflated.bytes, innerStats)
    if (!decoded.ok) return decodeError(decoded.detail, ackRe)
    body = decoded.value
  } else if (bodyEntry !== undefined) {
    const decoded = decodeBody(bytes.subarray(bodyEntry.valueStart, bodyEntry.valueEnd), stats)
    if (!decoded.ok) return decodeError(decoded.detail, ackRe)
    body = decoded.value
  }

  const envelope: Envelope = {
    v: Number(v.value),
    type: Number(type.value),
    id: copyBytes(id),
    src: utf8Text(stringContent(bytes, srcHead, end)),
    ts: Number(ts.value),
    prio,
    enc,
    ack,
  }
  if (dstHead !== undefined) envelope.dst = utf8Text(stringContent(bytes, dstHead, end))
  if (body !== undefined) envelope.body = body
  return { ok: true, envelope }
}

function readAckRe (bytes: Uint8Array, end: number, fields: Map<number, MapEntry>): Uint8Array | undefined {
  const ackEntry = fields.get(EnvelopeKey.ack)
  const idEntry = fields.get(EnvelopeKey.id)
  if (ackEntry === undefined || idEntry === undefined) return undefined
  if (bytes[ackEntry.valueStart] !== 0xf5) return undefined
  try {
    const idHead = readHead(bytes, idEntry.valueStart, end)
    if (idHead.major !== 2) return undefined
    const id = stringContent(bytes, idHead, end)
    return id.length === ID_BYTES ? copyBytes(id) : undefined
  } catch {
    return undefined
  }
}

/** cbor-x should accept whatever the strict walk accepted; should it not, that is a decode error, not a crash. */
function decodeBody (bytes: Uint8Array, stats: ScanStats): { ok: true, value: unknown } | { ok: false, detail: string } {
  try {
    return { ok: true, value: decodeScanned(bytes, stats) }
  } catch (err) {
    return { ok: false, detail: `body: ${errorMessage(err)}` }
  }
}

function wrongType (name: string, expected: string, head: Head): string {
  const what = head.major === 7 && head.info >= 25 && head.info <= 27 ? 'a float' : `CBOR major type ${head.major}`
  return `${name} is ${what}, expected ${expected}`
}

function errorMessage (err: unknown): string {
  return err instanceof Error ? err.message : String(err)
}

function decodeError (detail: string, ackRe?: Uint8Array): EnvelopeReadResult {
  return ackRe === undefined ? { ok: false, reason: 'decode', detail } : { ok: false, reason: 'decode', detail, ackRe }
}
