/**
 * The bounded queue of messages waiting to go on the wire, and the cutting of batches
 * from it. Pure data structures, no timers and no I/O, so their bounds are tested alone.
 *
 * One lane per priority (protocol-v1 §4: 0 critical … 3 low): batches take from the most
 * urgent lane first, and when the queue is full under 'drop-oldest' the oldest message of
 * the least urgent lane goes. Within a lane, order is publish order.
 */
import { BATCH_ITEMS_MAX } from '../src/protocol/index.js'
import { PayloadTooLargeError, QueueFullError } from './errors.js'

export interface Queued {
  readonly prio: number
  /** Publish order; requeued messages go back in this order. */
  readonly seq: number
}

/**
 * 'reject': a publish into a full queue is refused at once (QueueFullError), and nothing
 * already queued is lost. 'drop-oldest': the oldest least-urgent queued message is
 * rejected (QueueFullError with `dropped`) to make room, which suits telemetry where the
 * newest reading matters most.
 */
export type QueueFullPolicy = 'reject' | 'drop-oldest'

export const PRIORITY_LANES = 4

export class Outbox<T extends Queued> {
  readonly max: number
  readonly policy: QueueFullPolicy
  #lanes: T[][] = Array.from({ length: PRIORITY_LANES }, () => [])
  #size = 0

  constructor (max: number, policy: QueueFullPolicy) {
    this.max = max
    this.policy = policy
  }

  get size (): number {
    return this.#size
  }

  /**
   * Queues a new message. Returns the message dropped to make room (under 'drop-oldest'),
   * or throws QueueFullError (under 'reject').
   */
  push (item: T): T | undefined {
    let dropped: T | undefined
    if (this.#size >= this.max) {
      if (this.policy === 'reject') throw new QueueFullError(this.max, false)
      dropped = this.#dropOldest()
    }
    this.#lanes[item.prio].push(item)
    this.#size++
    return dropped
  }

  /**
   * Puts back messages that went on the wire but were not confirmed (the connection
   * dropped), ahead of newer ones and in their original order. They were accepted before,
   * so they may take the queue past `max` for a while; new publishes meet the bound.
   */
  requeue (items: T[]): void {
    const byLane: T[][] = Array.from({ length: PRIORITY_LANES }, () => [])
    for (const item of items) byLane[item.prio].push(item)
    for (let prio = 0; prio < PRIORITY_LANES; prio++) {
      if (byLane[prio].length === 0) continue
      this.#lanes[prio] = mergeBySeq(byLane[prio].sort((a, b) => a.seq - b.seq), this.#lanes[prio])
      this.#size += byLane[prio].length
    }
  }

  peek (): T | undefined {
    for (const lane of this.#lanes) if (lane.length > 0) return lane[0]
    return undefined
  }

  shift (): T | undefined {
    for (const lane of this.#lanes) {
      if (lane.length > 0) {
        this.#size--
        return lane.shift()
      }
    }
    return undefined
  }

  /** Removes one queued message (it was settled while waiting). */
  remove (item: T): boolean {
    const lane = this.#lanes[item.prio]
    const index = lane.indexOf(item)
    if (index < 0) return false
    lane.splice(index, 1)
    this.#size--
    return true
  }

  /** Empties the queue, returning everything in it (for close()). */
  clear (): T[] {
    const all = this.#lanes.flat()
    this.#lanes = Array.from({ length: PRIORITY_LANES }, () => [])
    this.#size = 0
    return all
  }

  #dropOldest (): T | undefined {
    for (let prio = PRIORITY_LANES - 1; prio >= 0; prio--) {
      const lane = this.#lanes[prio]
      if (lane.length > 0) {
        this.#size--
        return lane.shift()
      }
    }
    return undefined
  }
}

export interface BatchLimits {
  /** Envelopes per MQTT payload, 1 to 256 (protocol-v1 §4). */
  maxItems: number
  /** Bytes per batch payload; a single envelope larger than this still goes alone. */
  maxBytes: number
  /** The hub's payload limit: an envelope over it would be dropped without an Ack. */
  payloadBytesMax: number
}

export interface Batch<T> {
  items: T[]
  /** Encoded envelopes, parallel to `items`. */
  encoded: Uint8Array[]
  /** Messages that could not be encoded or are too large: to be rejected, not sent. */
  failed: Array<{ item: T, error: Error }>
}

// A CBOR array head for up to 256 items takes at most 3 bytes (0x99 + 2-byte length).
export const BATCH_HEAD_BYTES_MAX = 3

/**
 * Takes messages from the outbox, most urgent first, encoding each with `encode`, until
 * the batch holds `limits.maxItems` or the next envelope would take it past
 * `limits.maxBytes`. That envelope stays queued, its encoding kept by the caller's cache.
 */
export function takeBatch<T extends Queued> (outbox: Outbox<T>, encode: (item: T) => Uint8Array, limits: BatchLimits): Batch<T> {
  const maxItems = Math.min(limits.maxItems, BATCH_ITEMS_MAX)
  const batch: Batch<T> = { items: [], encoded: [], failed: [] }
  let bytes = BATCH_HEAD_BYTES_MAX
  while (batch.items.length < maxItems) {
    const item = outbox.peek()
    if (!item) break
    let encoded: Uint8Array
    try {
      encoded = encode(item)
    } catch (err) {
      outbox.shift()
      batch.failed.push({ item, error: err as Error })
      continue
    }
    if (encoded.length > limits.payloadBytesMax) {
      outbox.shift()
      batch.failed.push({ item, error: new PayloadTooLargeError(encoded.length, limits.payloadBytesMax) })
      continue
    }
    if (batch.items.length > 0 && bytes + encoded.length > limits.maxBytes) break
    outbox.shift()
    batch.items.push(item)
    batch.encoded.push(encoded)
    bytes += encoded.length
  }
  return batch
}

function mergeBySeq<T extends Queued> (a: T[], b: T[]): T[] {
  const out: T[] = []
  let i = 0
  let j = 0
  while (i < a.length && j < b.length) out.push(a[i].seq <= b[j].seq ? a[i++] : b[j++])
  while (i < a.length) out.push(a[i++])
  while (j < b.length) out.push(b[j++])
  return out
}
