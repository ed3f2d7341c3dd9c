/**
 * The envelope of §4 and how a sender writes one.
 */
import { randomBytes } from '@noble/hashes/utils.js'
import { assertBytes, describe } from './bytes.js'
import { cborInteger, encodeNormalized, normalizeForCbor } from './cbor.js'
import { deflateRaw } from './compression.js'
import { BODY_DEPTH_MAX, ENC_DEFLATE, EnvelopeKey, ID_BYTES, PRIO_MAX, PROTOCOL_VERSION, isMessageType } from './constants.js'
import { assertPrincipalId } from './ids.js'

/** An envelope as read from the wire (after parsePayload's decode step). */
export interface Envelope {
  /** Protocol version (key 0). parsePayload rejects anything but 1 with `version`. */
  v: number
  /** Message type code (key 1, §5). */
  type: number
  /** 16 random bytes, unique per sender (key 2). */
  id: Uint8Array
  /** Sender's principal id as written (key 3); checkEnvelope compares it with the authenticated id. */
  src: string
  /** Target principal id (key 4), when given. */
  dst?: string
  /**
   * Sender's clock in ms since the Unix epoch (key 5). A uint beyond 2^53 - 1 is read
   * approximately: it is hundreds of millennia away, so it always fails the skew check.
   */
  ts: number
  /** 0 critical, 1 high, 2 normal (the default when key 6 is absent), 3 low. */
  prio: number
  /** The decoded body (key 7), inflated first when enc is 1; undefined when absent. */
  body?: unknown
  /** Body encoding as received (key 9): 0 plain, 1 deflate-raw. */
  enc: 0 | 1
  /** The sender asked for an Ack (key 13). */
  ack: boolean
}

/** What a sender gives encodeEnvelope. */
export interface EnvelopeInput {
  /** Message type code (§5). */
  type: number
  /** The sender's principal id. */
  src: string
  /** 16 bytes; 16 random bytes when absent. */
  id?: Uint8Array
  /** Target principal id. */
  dst?: string
  /** ms since the Unix epoch; Date.now() when absent. */
  ts?: number
  /** 0-3; left out of the envelope (meaning 2) when absent. */
  prio?: number
  /** Any value encodeCbor accepts, nested at most BODY_DEPTH_MAX deep; left out when undefined. */
  body?: unknown
  /** Deflate-raw the CBOR body and set enc 1. */
  compress?: boolean
  /** Ask the receiver for an Ack (key 13 true). */
  ack?: boolean
}

const INPUT_KEYS = new Set(['type', 'src', 'id', 'dst', 'ts', 'prio', 'body', 'compress', 'ack'])

/**
 * The bytes of an unsigned envelope: a CBOR map with keys in ascending order, ts always as
 * an integer. Sign them with signEnvelope, or send them as they are.
 */
export function encodeEnvelope (input: EnvelopeInput): Uint8Array {
  if (typeof input !== 'object' || input === null) throw new TypeError(`input expected an object, got ${describe(input)}`)
  for (const key of Object.keys(input)) {
    if (!INPUT_KEYS.has(key)) throw new TypeError(`input has unknown key "${key}"`)
  }
  if (!isMessageType(input.type)) throw new TypeError(`type expected a message type code of §5, got ${String(input.type)}`)
  assertPrincipalId('src', input.src)
  if (input.dst !== undefined) assertPrincipalId('dst', input.dst)
  const id = input.id ?? randomBytes(ID_BYTES)
  assertBytes('id', id, ID_BYTES)
  const ts = input.ts ?? Date.now()
  if (!Number.isSafeInteger(ts) || ts < 0) throw new TypeError(`ts expected a non-negative integer (ms), got ${String(ts)}`)
  if (input.prio !== undefined && (!Number.isInteger(input.prio) || input.prio < 0 || input.prio > PRIO_MAX)) {
    throw new TypeError(`prio expected an integer from 0 to ${PRIO_MAX}, got ${String(input.prio)}`)
  }
  if (input.compress !== undefined && typeof input.compress !== 'boolean') throw new TypeError('compress expected a boolean')
  if (input.ack !== undefined && typeof input.ack !== 'boolean') throw new TypeError('ack expected a boolean')

  const map = new Map<number, unknown>()
  map.set(EnvelopeKey.v, PROTOCOL_VERSION)
  map.set(EnvelopeKey.type, input.type)
  map.set(EnvelopeKey.id, id.constructor === Uint8Array ? id : new Uint8Array(id))
  map.set(EnvelopeKey.src, input.src)
  if (input.dst !== undefined) map.set(EnvelopeKey.dst, input.dst)
  // A millisecond timestamp needs more than 32 bits: cborInteger keeps it an integer.
  map.set(EnvelopeKey.ts, cborInteger(ts))
  if (input.prio !== undefined) map.set(EnvelopeKey.prio, input.prio)
  if (input.compress === true) {
    if (input.body === undefined) throw new TypeError('compress expected a body to compress')
    const plain = encodeNormalized(normalizeForCbor(input.body, { name: 'body', depthMax: BODY_DEPTH_MAX }))
    map.set(EnvelopeKey.body, deflateRaw(plain))
    map.set(EnvelopeKey.enc, ENC_DEFLATE)
  } else if (input.body !== undefined) {
    map.set(EnvelopeKey.body, normalizeForCbor(input.body, { name: 'body', depthMax: BODY_DEPTH_MAX }))
  }
  if (input.ack === true) map.set(EnvelopeKey.ack, true)
  return encodeNormalized(map)
}

