/**
 * The most recently queued packets, in memory beside their SQLite rows, so that the live
 * path of a persistent session touches SQLite once per packet: the durable INSERT when it
 * is queued. Aedes then records the id the packet was sent with (outgoingUpdate) and
 * removes it on PUBACK (outgoingClearMessageId); with the row here, the first needs no SQL
 * for QoS 1 and the second is a DELETE by primary key instead of a search that reads the
 * whole row back. Those two were most of the persistence's CPU time in bench/persistence.ts.
 *
 * The id of a QoS 1 packet may live here only (`idPersisted` false): losing it in a crash
 * costs a resend with a new id after the restart, which QoS 1 allows. It is written to
 * SQLite when the row is evicted and when the file is closed, so that a client resuming
 * after an orderly restart gets its packets again with their original ids [MQTT-4.4.0-1].
 *
 * Bounded by rows and by payload bytes; the oldest rows go first, and a row that is not
 * here is found in SQLite as before.
 */
import type { PacketLike } from './packet-codec.js'

/** Rows kept at most. */
export const HOT_ROWS_MAX = 16_384
/** Payload bytes kept at most (the packets share their payload Buffer with Aedes's). */
export const HOT_PAYLOAD_BYTES_MAX = 16 * 1024 * 1024

export interface HotRow {
  readonly seq: number
  readonly clientId: string
  /** The queued copy, as the in-memory store keeps it; its messageId follows the row's. */
  readonly packet: PacketLike
  readonly payloadBytes: number
  /** True once packet.messageId is in SQLite too. */
  idPersisted: boolean
}

/** One client's rows by broker counter and by message id (numbers: no key strings to build on the hot path). */
interface ClientRows {
  byCounter: Map<number, HotRow>
  byMessageId: Map<number, HotRow>
  rows: number
}

export class HotRows {
  /** By queue position; a Map keeps insertion order, which is seq order, so the first entry is the oldest. */
  readonly #bySeq = new Map<number, HotRow>()
  readonly #clients = new Map<string, ClientRows>()
  readonly #rowsMax: number
  readonly #bytesMax: number
  #bytes = 0

  constructor (options: { rowsMax?: number, bytesMax?: number } = {}) {
    this.#rowsMax = options.rowsMax ?? HOT_ROWS_MAX
    this.#bytesMax = options.bytesMax ?? HOT_PAYLOAD_BYTES_MAX
  }

  /** Adds a freshly queued row (its packet has no id yet). */
  add (seq: number, clientId: string, packet: PacketLike): void {
    const payloadBytes = typeof packet.payload === 'string' ? Buffer.byteLength(packet.payload) : packet.payload?.length ?? 0
    const row: HotRow = { seq, clientId, packet, payloadBytes, idPersisted: true }
    this.#bySeq.set(seq, row)
    let client = this.#clients.get(clientId)
    if (client === undefined) {
      client = { byCounter: new Map(), byMessageId: new Map(), rows: 0 }
      this.#clients.set(clientId, client)
    }
    client.rows++
    // Indexed by counter alone; byCounter checks the broker id. The first queued copy wins,
    // as in a search in queue order; a second one (another broker with the same counter)
    // is found in SQLite.
    if (typeof packet.brokerCounter === 'number' && !client.byCounter.has(packet.brokerCounter)) {
      client.byCounter.set(packet.brokerCounter, row)
    }
    this.#bytes += payloadBytes
  }

  /** Removes the oldest rows past the bounds, handing each one whose id is in memory only to `persistId` first. */
  evict (persistId: (row: HotRow) => void): void {
    while (this.#bySeq.size > this.#rowsMax || (this.#bytes > this.#bytesMax && this.#bySeq.size > 0)) {
      const oldest = this.#bySeq.values().next().value as HotRow
      if (!oldest.idPersisted) persistId(oldest)
      this.delete(oldest)
    }
  }

  byCounter (clientId: string, brokerId: string, brokerCounter: number): HotRow | undefined {
    const row = this.#clients.get(clientId)?.byCounter.get(brokerCounter)
    return row?.packet.brokerId === brokerId ? row : undefined
  }

  byMessageId (clientId: string, messageId: number): HotRow | undefined {
    return this.#clients.get(clientId)?.byMessageId.get(messageId)
  }

  bySeq (seq: number): HotRow | undefined {
    return this.#bySeq.get(seq)
  }

  /**
   * Records the id the row's packet was sent with. Returns false when another row of the
   * client already holds that id here: this row then keeps the id unindexed, and the caller
   * must write it to SQLite, where a search in queue order finds it once the other is gone.
   */
  setMessageId (row: HotRow, messageId: number | undefined, persisted: boolean): boolean {
    const client = this.#clients.get(row.clientId)
    const previous = row.packet.messageId
    if (client !== undefined && typeof previous === 'number' && client.byMessageId.get(previous) === row) {
      client.byMessageId.delete(previous)
    }
    row.packet.messageId = messageId
    row.idPersisted = persisted
    if (messageId === undefined || client === undefined || this.#bySeq.get(row.seq) !== row) return true
    if (client.byMessageId.has(messageId)) return false
    client.byMessageId.set(messageId, row)
    return true
  }

  delete (row: HotRow): void {
    if (this.#bySeq.get(row.seq) !== row) return
    this.#bySeq.delete(row.seq)
    this.#bytes -= row.payloadBytes
    const client = this.#clients.get(row.clientId)
    if (client === undefined) return
    const { brokerCounter, messageId } = row.packet
    if (typeof brokerCounter === 'number' && client.byCounter.get(brokerCounter) === row) client.byCounter.delete(brokerCounter)
    if (typeof messageId === 'number' && client.byMessageId.get(messageId) === row) client.byMessageId.delete(messageId)
    if (--client.rows === 0) this.#clients.delete(row.clientId)
  }

  deleteSeq (seq: number): void {
    const row = this.#bySeq.get(seq)
    if (row !== undefined) this.delete(row)
  }

  /** The rows whose id is in memory only. */
  * unpersisted (): Generator<HotRow> {
    for (const row of this.#bySeq.values()) {
      if (!row.idPersisted) yield row
    }
  }

  clear (): void {
    this.#bySeq.clear()
    this.#clients.clear()
    this.#bytes = 0
  }

  get size (): number {
    return this.#bySeq.size
  }
}
