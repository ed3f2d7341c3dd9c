/**
 * The bridge record of §6: what the hub publishes on mn/v1/bridge/{type}/{id} for every
 * accepted envelope, and how a service reads it.
 */
import { assertBytes, copyBytes, describe, plainView, utf8Text } from './bytes.js'
import { cborInteger, decodeScanned, encodeNormalized, normalizeForCbor } from './cbor.js'
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

/** The CBOR map {0: 1, 1: type, 3: src, 5: receivedAt, 7: body, 10: hubId, 11: signed, 12: raw}; no key 9. */
export function encodeBridgeRecord (record: BridgeRecord): Uint8Array {
  if (typeof record !== 'object' || record === null) throw new TypeError(`record expected an object, got ${describe(record)}`)
  if (!isMessageType(record.type)) throw new TypeError(`type expected a message type code of §5, got ${String(record.type)}`)
  assertPrincipalId('src', record.src)
  if (!Number.isSafeInteger(record.receivedAt) || record.receivedAt < 0) {
    throw new TypeError(`receivedAt expected a non-negative integer (ms), got ${String(record.receivedAt)}`)
  }
  assertPrincipalId('hubId', record.hubId)
  if (typeof record.signed !== 'boolean') throw new TypeError(`signed expected a boolean, got ${describe(record.signed)}`)
  assertBytes('raw', record.raw)
  const map = new Map<number, unknown>()
  map.set(BridgeKey.v, PROTOCOL_VERSION)
  map.set(BridgeKey.type, record.type)
  map.set(BridgeKey.src, record.src)
  map.set(BridgeKey.receivedAt, cborInteger(record.receivedAt))
  if (record.body !== undefined) map.set(BridgeKey.body, normalizeForCbor(record.body, { name: 'body', depthMax: BODY_DEPTH_MAX }))
  map.set(BridgeKey.hubId, record.hubId)
  map.set(BridgeKey.signed, record.signed)
  map.set(BridgeKey.raw, plainView(record.raw))
  return encodeNormalized(map)
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
