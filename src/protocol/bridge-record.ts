/**
 * The bridge record of §6: what the hub publishes on mn/v1/bridge/{type}/{id} for every
 * accepted envelope, and how a service reads it.
 */
import { assertBytes, copyBytes, describe, plainView, utf8Text } from './bytes.js'
import { decodeScanned, encodeNormalizedView, headLength, normalizeForCbor, writeHead } from './cbor.js'
import { mapEntries, newScanStats, readHead, stringContent, walkItem, walkWhole, type Head, type MapEntry } from './cbor-scan.js'
import { BODY_DEPTH_MAX, BridgeKey, CBOR_DEPTH_MAX, PROTOCOL_VERSION, isMessageType } from './constants.js'
import { ProtocolError } from './errors.js'
import { assertPrincipalId } from './ids.js'

export interface BridgeRecord {
  /** Message type code. */
  type: number
  /** The device's principal id. */
  src: string
  /** When the hub received the envelope, ms since the Unix epoch. */
  receivedAt: number
  /** The body after inflating (enc 1) and decoding; undefined when the envelope had none. */
  body?: unknown
  /** The hub node's principal id. */
  hubId: string
  /** A valid signature was verified. */
  signed: boolean
  /** The envelope's bytes exactly as received (a batch item's alone): a service can verify the signature itself. */
  raw: Uint8Array
}

/** What encodeBridgeRecord takes: a record, and optionally the body already encoded. */
export interface BridgeRecordInput extends BridgeRecord {
  /**
   * The body's CBOR exactly as encodeCbor writes `body`: the ParsedItem.bodyBytes of the
   * envelope the record is for. When given it is written as key 7 as it is, and `body` is
   * not looked at (nor encoded again, which is most of the cost of a record).
   */
  bodyBytes?: Uint8Array
}

const TWO_POW_32 = 0x1_0000_0000
/** A principal id as a CBOR text string: its 32 ASCII characters after the head 0x78 0x20. */
const PRINCIPAL_ID_ITEM_BYTES = 2 + 32

/**
 * The CBOR map {0: 1, 1: type, 3: src, 5: receivedAt, 7: body, 10: hubId, 11: signed, 12: raw}
 * (no key 9), written in place: the same bytes as encoding that map with encodeCbor (keys
 * in this order, shortest heads), with the body's bytes spliced in.
 *
 * allocate, when given, provides the array to write into (the hub passes Node's pooled
 * Buffer.allocUnsafe: a fresh ArrayBuffer per record costs more than the rest of the
 * record); every byte of it is written, and the record is what it returned. Without it the
 * record is a new Uint8Array.
 */
export function encodeBridgeRecord (record: BridgeRecordInput, allocate?: (length: number) => Uint8Array): Uint8Array {
  if (typeof record !== 'object' || record === null) throw new TypeError(`record expected an object, got ${describe(record)}`)
  if (!isMessageType(record.type)) throw new TypeError(`type expected a message type code of §5, got ${String(record.type)}`)
  assertPrincipalId('src', record.src)
  if (!Number.isSafeInteger(record.receivedAt) || record.receivedAt < 0) {
    throw new TypeError(`receivedAt expected a non-negative integer (ms), got ${String(record.receivedAt)}`)
  }
  assertPrincipalId('hubId', record.hubId)
  if (typeof record.signed !== 'boolean') throw new TypeError(`signed expected a boolean, got ${describe(record.signed)}`)
  assertBytes('raw', record.raw)
  let body: Uint8Array | undefined
  if (record.bodyBytes !== undefined) {
    assertBytes('bodyBytes', record.bodyBytes)
    if (record.bodyBytes.length === 0) throw new TypeError('bodyBytes expected the CBOR of one item, got length=0')
    body = record.bodyBytes
  } else if (record.body !== undefined) {
    // Encoded alone, then copied in: CBOR is written item by item, so these are the bytes
    // the body would have inside the whole map.
    body = encodeNormalizedView(normalizeForCbor(record.body, { name: 'body', depthMax: BODY_DEPTH_MAX }))
  }
  if (allocate !== undefined && typeof allocate !== 'function') throw new TypeError(`allocate expected a function, got ${describe(allocate)}`)
  const { type, receivedAt, raw } = record
  const length = 1 + 2 + 1 + headLength(type) + 1 + PRINCIPAL_ID_ITEM_BYTES + 1 + (receivedAt < TWO_POW_32 ? headLength(receivedAt) : 9) +
    (body === undefined ? 0 : 1 + body.length) + 1 + PRINCIPAL_ID_ITEM_BYTES + 2 + 1 + headLength(raw.length) + raw.length
  const out = allocate === undefined ? new Uint8Array(length) : allocate(length)
  if (!(out instanceof Uint8Array) || out.length !== length) {
    throw new TypeError(`allocate expected to return a Uint8Array of length ${length}, got ${out instanceof Uint8Array ? `length=${out.length}` : describe(out)}`)
  }
  out[0] = body === undefined ? 0xa7 : 0xa8 // a map of 7 or 8 pairs
  out[1] = BridgeKey.v
  out[2] = PROTOCOL_VERSION
  out[3] = BridgeKey.type
  let pos = writeHead(out, 4, 0, type)
  out[pos++] = BridgeKey.src
  pos = writePrincipalId(out, pos, record.src)
  out[pos++] = BridgeKey.receivedAt
  if (receivedAt < TWO_POW_32) {
    pos = writeHead(out, pos, 0, receivedAt)
  } else {
    // A uint in the 8-byte form (what a bigint becomes in encodeCbor).
    out[pos] = 0x1b
    writeUint32(out, pos + 1, Math.floor(receivedAt / TWO_POW_32))
    writeUint32(out, pos + 5, receivedAt % TWO_POW_32)
    pos += 9
  }
  if (body !== undefined) {
    out[pos++] = BridgeKey.body
    out.set(body, pos)
    pos += body.length
  }
  out[pos++] = BridgeKey.hubId
  pos = writePrincipalId(out, pos, record.hubId)
  out[pos++] = BridgeKey.signed
  out[pos++] = record.signed ? 0xf5 : 0xf4
  out[pos++] = BridgeKey.raw
  pos = writeHead(out, pos, 2, raw.length)
  out.set(raw, pos)
  // Every byte is written (allocate may hand out memory that held something else).
  if (pos + raw.length !== length) throw new Error(`bridge record of ${pos + raw.length} bytes written into ${length}`)
  return out
}

/** A principal id (checked already: 32 lowercase hex characters) as a text string. */
function writePrincipalId (out: Uint8Array, pos: number, id: string): number {
  out[pos] = 0x78
  out[pos + 1] = 32
  for (let i = 0; i < 32; i++) out[pos + 2 + i] = id.charCodeAt(i)
  return pos + PRINCIPAL_ID_ITEM_BYTES
}

function writeUint32 (out: Uint8Array, pos: number, value: number): void {
  out[pos] = value >>> 24
  out[pos + 1] = (value >>> 16) & 0xff
  out[pos + 2] = (value >>> 8) & 0xff
  out[pos + 3] = value & 0xff
}

/**
 * Reads a bridge record with the same strictness as an envelope. Throws ProtocolError
 * (`decode`, or `version` for a record of another version) when the bytes are not one.
 */
export function decodeBridgeRecord (bytes: Uint8Array): BridgeRecord {
  assertBytes('bytes', bytes)
  const view = plainView(bytes)
  try {
    walkWhole(view, 0, view.length, { strict: false, depthMax: CBOR_DEPTH_MAX })
  } catch (err) {
    throw new ProtocolError('decode', `bridge record is not one well-formed CBOR item: ${(err as Error).message}`, { cause: err })
  }
  const head = readHead(view, 0, view.length)
  if (head.major !== 5) throw new ProtocolError('decode', 'bridge record is not a map')
  const fields = new Map<number, MapEntry>()
  for (const entry of mapEntries(view, head, view.length)) {
    if (entry.key.major !== 0 && entry.key.major !== 1) throw new ProtocolError('decode', 'bridge record keys are integers')
    if (typeof entry.key.value !== 'number') continue
    const key = entry.key.major === 0 ? entry.key.value : -1 - entry.key.value
    if (fields.has(key)) throw new ProtocolError('decode', `bridge record key ${key} appears twice`)
    fields.set(key, entry)
  }
  const stats = newScanStats()
  for (const [key, entry] of fields) {
    try {
      walkItem(view, entry.valueStart, view.length, { strict: true, depthMax: BODY_DEPTH_MAX, stats: key === BridgeKey.body ? stats : undefined })
    } catch (err) {
      throw new ProtocolError('decode', `bridge record key ${key}: ${(err as Error).message}`, { cause: err })
    }
  }
  const need = (key: number, name: string, major: number): Head => {
    const entry = fields.get(key)
    if (entry === undefined) throw new ProtocolError('decode', `bridge record lacks key ${key} (${name})`)
    const value = readHead(view, entry.valueStart, view.length)
    if (value.major !== major) throw new ProtocolError('decode', `bridge record ${name} has CBOR major type ${value.major}, expected ${major}`)
    return value
  }
  const v = need(BridgeKey.v, 'v', 0)
  if (v.value !== PROTOCOL_VERSION) throw new ProtocolError('version', `bridge record version ${v.value} is not ${PROTOCOL_VERSION}`)
  const type = need(BridgeKey.type, 'type', 0)
  const src = need(BridgeKey.src, 'src', 3)
  const receivedAt = need(BridgeKey.receivedAt, 'receivedAt', 0)
  const hubId = need(BridgeKey.hubId, 'hubId', 3)
  const signed = need(BridgeKey.signed, 'signed', 7)
  if (signed.info !== 20 && signed.info !== 21) throw new ProtocolError('decode', 'bridge record signed is not a boolean')
  const raw = need(BridgeKey.raw, 'raw', 2)
  const record: BridgeRecord = {
    type: Number(type.value),
    src: utf8Text(stringContent(view, src, view.length)),
    receivedAt: Number(receivedAt.value),
    hubId: utf8Text(stringContent(view, hubId, view.length)),
    signed: signed.info === 21,
    raw: copyBytes(stringContent(view, raw, view.length)),
  }
  const bodyEntry = fields.get(BridgeKey.body)
  if (bodyEntry !== undefined) {
    try {
      record.body = decodeScanned(view.subarray(bodyEntry.valueStart, bodyEntry.valueEnd), stats)
    } catch (err) {
      throw new ProtocolError('decode', `bridge record body: ${(err as Error).message}`, { cause: err })
    }
  }
  return record
}
