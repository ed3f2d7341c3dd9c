/**
 * Packets as SQLite rows. The fields Aedes reads on every packet get a column each (the
 * payload as a BLOB, or as TEXT when it was a string), anything else on the object (MQTT 5
 * `properties`, `messageExpiry`, `clientId`, ...) goes into one v8-serialized BLOB, and a bit
 * mask records which keys the object had, so that a packet comes back with exactly the keys
 * it went in with, `messageId: undefined` included (Aedes and the abstract tests compare
 * whole objects). v8 serialization keeps Buffers inside `properties` (correlationData) as
 * Buffers, which JSON would not; it is kept off the hot path because it is several times
 * slower than a column per field.
 */
import { serialize, deserialize } from 'node:v8'

/** The packet columns, in the order of PacketValues. */
export const PACKET_COLUMNS = 'fields, cmd, topic, payload, qos, retain, dup, message_id, broker_id, broker_counter, extra'

/** The column definitions for PACKET_COLUMNS; `payload` has no type so that SQLite keeps a BLOB a BLOB and a string TEXT. */
export const PACKET_COLUMN_DEFS = `fields INTEGER NOT NULL,
  cmd TEXT,
  topic TEXT,
  payload,
  qos INTEGER,
  retain INTEGER,
  dup INTEGER,
  message_id INTEGER,
  broker_id TEXT,
  broker_counter INTEGER,
  extra BLOB`

/** The keys a packet object may carry; unknown keys ride in `extra`. */
export interface PacketLike {
  cmd?: string
  topic?: string
  payload?: Buffer | Uint8Array | string
  qos?: number
  retain?: boolean
  dup?: boolean
  messageId?: number
  brokerId?: string
  brokerCounter?: number
  [key: string]: unknown
}

export interface PacketRow {
  fields: number
  cmd: string | null
  topic: string | null
  payload: Buffer | string | null
  qos: number | null
  retain: number | null
  dup: number | null
  message_id: number | null
  broker_id: string | null
  broker_counter: number | null
  extra: Buffer | null
}

/** The values bound for PACKET_COLUMNS, in that order. */
export type PacketValues = [
  fields: number,
  cmd: string | null,
  topic: string | null,
  payload: Buffer | Uint8Array | string | null,
  qos: number | null,
  retain: number | null,
  dup: number | null,
  messageId: number | null,
  brokerId: string | null,
  brokerCounter: number | null,
  extra: Buffer | null,
]

const CMD = 1
const TOPIC = 2
const PAYLOAD = 4
const QOS = 8
const RETAIN = 16
const DUP = 32
const MESSAGE_ID = 64
const BROKER_ID = 128
const BROKER_COUNTER = 256

/**
 * Encodes every own enumerable key of `packet` except functions (Aedes hangs a
 * `writeCallback` on packets in flight). A column field whose value has an unexpected
 * type (a null brokerId, say) goes to `extra` unchanged rather than being coerced.
 */
export function encodePacket (packet: PacketLike): PacketValues {
  const values: PacketValues = [0, null, null, null, null, null, null, null, null, null, null]
  let fields = 0
  let extra: Record<string, unknown> | null = null
  for (const key of Object.keys(packet)) {
    const value = packet[key]
    if (typeof value === 'function') continue
    let bit = 0
    switch (key) {
      case 'cmd': bit = stringField(values, 1, value) ? CMD : 0; break
      case 'topic': bit = stringField(values, 2, value) ? TOPIC : 0; break
      case 'payload':
        if (value === undefined || typeof value === 'string' || value instanceof Uint8Array) {
          values[3] = value ?? null
          bit = PAYLOAD
        }
        break
      case 'qos': bit = numberField(values, 4, value) ? QOS : 0; break
      case 'retain': bit = booleanField(values, 5, value) ? RETAIN : 0; break
      case 'dup': bit = booleanField(values, 6, value) ? DUP : 0; break
      case 'messageId': bit = numberField(values, 7, value) ? MESSAGE_ID : 0; break
      case 'brokerId': bit = stringField(values, 8, value) ? BROKER_ID : 0; break
      case 'brokerCounter': bit = numberField(values, 9, value) ? BROKER_COUNTER : 0; break
    }
    if (bit === 0) {
      extra ??= {}
      extra[key] = value
    }
    fields |= bit
  }
  values[0] = fields
  if (extra !== null) values[10] = serialize(extra)
  return values
}

/**
 * The copy of `packet` that aedes-persistence's in-memory store keeps for queued and
 * incoming packets (`new Packet(packet)` of aedes-packet): the same keys with the same
 * defaults, so that both stores hand Aedes back the same object. `messageId` is dropped (a
 * queued packet gets its id when it is sent) unless `keepMessageId`. The payload and
 * `properties` are shared with the original, as they are there.
 */
export function queuedCopy (packet: PacketLike, keepMessageId: boolean): PacketLike {
  const copy: PacketLike = {}
  // The four optional keys of aedes-packet, copied only when present, as it does.
  if (Object.hasOwn(packet, 'clientId')) copy.clientId = packet.clientId
  if (Object.hasOwn(packet, 'nl')) copy.nl = packet.nl
  if (Object.hasOwn(packet, 'properties')) copy.properties = packet.properties
  if (Object.hasOwn(packet, 'messageExpiry')) copy.messageExpiry = packet.messageExpiry
  copy.cmd = packet.cmd || 'publish'
  copy.brokerId = packet.brokerId || undefined
  copy.brokerCounter = packet.brokerCounter || 0
  copy.topic = packet.topic
  copy.payload = packet.payload || Buffer.alloc(0)
  copy.qos = packet.qos || 0
  copy.retain = packet.retain || false
  copy.dup = packet.dup || false
  // [MQTT-2.3.1-5] as in aedes-packet: only a packet that needs an id has the key.
  if (copy.qos > 0 || copy.cmd !== 'publish') copy.messageId = keepMessageId ? packet.messageId : undefined
  else if (keepMessageId) copy.messageId = packet.messageId
  return copy
}

/** Rebuilds the object encodePacket was given (a fresh object on every call). */
export function decodePacket (row: PacketRow): PacketLike {
  const packet: PacketLike = row.extra === null ? {} : deserialize(row.extra) as PacketLike
  const fields = row.fields
  if ((fields & CMD) !== 0) packet.cmd = row.cmd ?? undefined
  if ((fields & TOPIC) !== 0) packet.topic = row.topic ?? undefined
  if ((fields & PAYLOAD) !== 0) packet.payload = row.payload ?? undefined
  if ((fields & QOS) !== 0) packet.qos = row.qos ?? undefined
  if ((fields & RETAIN) !== 0) packet.retain = row.retain === null ? undefined : row.retain === 1
  if ((fields & DUP) !== 0) packet.dup = row.dup === null ? undefined : row.dup === 1
  if ((fields & MESSAGE_ID) !== 0 || row.message_id !== null) packet.messageId = row.message_id ?? undefined
  if ((fields & BROKER_ID) !== 0) packet.brokerId = row.broker_id ?? undefined
  if ((fields & BROKER_COUNTER) !== 0) packet.brokerCounter = row.broker_counter ?? undefined
  return packet
}

function stringField (values: PacketValues, index: number, value: unknown): boolean {
  if (value !== undefined && typeof value !== 'string') return false
  values[index] = value ?? null
  return true
}

function numberField (values: PacketValues, index: number, value: unknown): boolean {
  if (value !== undefined && typeof value !== 'number') return false
  values[index] = value ?? null
  return true
}

function booleanField (values: PacketValues, index: number, value: unknown): boolean {
  if (value !== undefined && typeof value !== 'boolean') return false
  values[index] = value === undefined ? null : value ? 1 : 0
  return true
}
