/**
 * A durable Aedes 1.x persistence in one SQLite file (better-sqlite3), for a single broker
 * process: subscriptions, retained messages, the QoS 1/2 queues of persistent sessions,
 * inbound QoS 2 state and will messages survive a restart or a crash.
 *
 * It implements the promise interface Aedes 1.2 calls (aedes-persistence 11's
 * asyncPersistence.js is the reference, and its abstract test suite passes against this
 * class). Where it departs from the in-memory reference on purpose, the method says so.
 *
 * - Writes are grouped: each runs at once inside a transaction that is committed at the end
 *   of the event-loop turn, and its promise settles once that commit is fsynced, in call
 *   order (group-commit.ts; the fsync runs off the main thread, wal-sync.ts). So when
 *   Aedes's publish callback fires for a QoS ≥ 1 message, the queued copies for persistent
 *   sessions are on disk. Two writes resolve before that, each for a reason it gives:
 *   storeRetained, and the id a QoS 1 packet is sent with (outgoingUpdate).
 * - Subscriptions are matched in memory (qlobber's QlobberSub, as aedes-persistence does),
 *   loaded from SQLite when the file is opened; SQLite is the durable copy. The retained
 *   topics are kept in memory too, the retained packets are not. The latest queued packets
 *   are kept in memory beside their rows, so that the live path costs one INSERT and one
 *   DELETE by key (hot-rows.ts).
 */
import { mkdirSync } from 'node:fs'
import { createRequire } from 'node:module'
import { dirname } from 'node:path'
import { Readable } from 'node:stream'
import BetterSqlite3, { type Database, type Statement } from 'better-sqlite3'
import type { Logger } from 'pino'
import { GroupCommit, BATCH_OPS_MAX, type GroupCommitStats } from './group-commit.js'
import {
  PACKET_COLUMNS, decodePacket, encodePacket, queuedCopy,
  type PacketLike, type PacketRow, type PacketValues,
} from './packet-codec.js'
import { prepareSchema } from './schema.js'
import { walSync, type WalSync } from './wal-sync.js'
import { HotRows, HOT_ROWS_MAX } from './hot-rows.js'

export type { PacketLike } from './packet-codec.js'
export type { GroupCommitStats } from './group-commit.js'

export interface SqlitePersistenceOptions {
  /**
   * The SQLite file, created with its directory when missing. Give the persistence a file of
   * its own: it holds a write transaction open for up to one event-loop turn and takes an
   * exclusive lock on the file, so a second connection (or a second broker) cannot use it.
   */
  file: string
  log?: Logger
  /**
   * When a write counts as done (its promise settles). 'fsync', the default: once the WAL
   * holding it is fsynced, so that a message whose publish callback has fired survives a
   * power cut, not only a process crash: the hub acknowledges a device after that callback,
   * and an acknowledged message must not be lost. The fsync runs on libuv's thread pool, one
   * at a time, shared by every group committed meanwhile (wal-sync.ts says why that is as
   * safe as SQLite's synchronous = FULL). 'sqlite-full': SQLite's FULL, the same guarantee
   * with the fsync inside COMMIT on the main thread; kept to measure against. 'os': no fsync
   * (synchronous = NORMAL): durable against kill -9, not against a power cut.
   */
  durability?: 'fsync' | 'sqlite-full' | 'os'
  /** Most operations committed together; a burst past this commits early. */
  batchOpsMax?: number
  /** Queued packets kept in memory beside their rows for the live path (hot-rows.ts); 16,384 by default. */
  hotRowsMax?: number
}

/** The part of an Aedes client this persistence reads. */
export interface PersistenceClient { id: string }
/** The part of the Aedes broker this persistence reads: its id, stamped on wills. */
export interface PersistenceBroker { id: string }

/** A subscription as Aedes hands it to addSubscriptions. */
export interface SubscriptionInput {
  topic: string
  qos: number
  rh?: number
  rap?: boolean
  nl?: boolean
  /** MQTT 5 Subscription Identifier: stored and returned by subscriptionsByClient, not by subscriptionsByTopic. */
  subscriptionIdentifier?: number
}

/** A subscription as subscriptionsByClient returns it (Aedes restores a session from it). */
export interface SubscriptionRecord {
  qos: number
  rh: number | undefined
  rap: boolean | undefined
  nl: boolean | undefined
  subscriptionIdentifier?: number
}

/** A QoS ≥ 1 subscription matching a topic, as Aedes expects from subscriptionsByTopic. */
export interface MatchedSubscription {
  clientId: string
  topic: string
  qos: number
  rh?: number
  rap?: boolean
  nl?: boolean
}

interface QlobberSub {
  subscriptionsCount: number
  add (topic: string, value: MatchedSubscription): unknown
  remove (topic: string, value: { clientId: string, topic: string }): unknown
  match (topic: string): MatchedSubscription[]
  clear (): unknown
}
interface QlobberTrue {
  add (topic: string): unknown
  test (topic: string): boolean
}
interface QlobberOptions { wildcard_one: string, wildcard_some: string, separator: string, match_empty_levels: boolean }

// qlobber is CommonJS without types; these are the few members used here. Its QlobberSub is
// the matcher aedes-persistence itself uses (the same wildcards, and the same 100-level limit
// Aedes clamps topics to).
const require = createRequire(import.meta.url)
const QlobberSubClass = require('qlobber/aedes/qlobber-sub.js') as new (options: QlobberOptions) => QlobberSub
const QlobberTrueClass = (require('qlobber') as { QlobberTrue: new (options: QlobberOptions) => QlobberTrue }).QlobberTrue
// match_empty_levels as Aedes's own router (mqemitter) has it, so that `+` matches an empty
// level (`a/+/b` matches `a//b`) for an offline session as it does for a live one; the
// in-memory aedes-persistence leaves it off, and would not queue such a message.
const QLOBBER_OPTIONS: QlobberOptions = { wildcard_one: '+', wildcard_some: '#', separator: '/', match_empty_levels: true }

/** Rows read per query when a stream walks a queue or the wills: bounds the memory of a large backlog. */
const STREAM_PAGE_ROWS = 256

/** How long opening waits for another holder of the file's lock, in ms. */
const BUSY_TIMEOUT_MS = 5_000

const PACKET_PLACEHOLDERS = PACKET_COLUMNS.split(',').map(() => '?').join(', ')
const PACKET_ASSIGNMENTS = PACKET_COLUMNS.split(',').map(column => `${column.trim()} = ?`).join(', ')

type OutgoingRow = PacketRow & { seq: number }
type WillRow = PacketRow & { rowid: number }

interface Statements {
  upsertSubscription: Statement<[string, string, number, string]>
  deleteSubscription: Statement<[string, string]>
  deleteClientSubscriptions: Statement<[string]>
  allSubscriptions: Statement<[], { client_id: string, topic: string, record: string }>
  upsertRetained: Statement<PacketValues>
  deleteRetained: Statement<[string]>
  getRetained: Statement<[string], PacketRow>
  retainedTopics: Statement<[], { topic: string }>
  insertOutgoing: Statement<[number, string, ...PacketValues]>
  setOutgoingIdByCounter: Statement<[number | null, string, number, string], { seq: number }>
  setOutgoingIdBySeq: Statement<[number | null, number]>
  deleteOutgoingBySeq: Statement<[number]>
  outgoingSeqByMessageId: Statement<[string, number], { seq: number }>
  outgoingSeqByMessageIdOtherBroker: Statement<[string, number, string], { seq: number }>
  replaceOutgoing: Statement<[...PacketValues, number]>
  clearOutgoing: Statement<[string, number], OutgoingRow>
  outgoingPage: Statement<[string, number, number, number], OutgoingRow>
  maxOutgoingSeq: Statement<[], { seq: number | null }>
  outgoingCount: Statement<[], { n: number }>
  upsertIncoming: Statement<[string, ...PacketValues]>
  getIncoming: Statement<[string, number], PacketRow>
  deleteIncoming: Statement<[string, number]>
  deleteClientIncoming: Statement<[string]>
  upsertWill: Statement<[string, ...PacketValues]>
  getWill: Statement<[string], PacketRow>
  deleteWill: Statement<[string], PacketRow>
  willPage: Statement<[number, number], WillRow>
}

/**
 * Opens (or creates) the persistence's SQLite file and loads its subscriptions and retained
 * topics into memory. Hand the result to Aedes as `persistence`; Aedes calls `setup`.
 * Aedes's `close()` does not destroy its persistence: after closing the broker, call
 * `destroy()`, which commits and fsyncs what is pending and closes the file (safe to call
 * twice; later calls to the persistence reject).
 *
 * @example
 * const persistence = await createSqlitePersistence({ file: 'data/mqtt-state.db', log })
 * const aedes = await Aedes.createBroker({ persistence })
 * // ... on shutdown:
 * await new Promise<void>(resolve => aedes.close(() => resolve()))
 * await persistence.destroy()
 */
export async function createSqlitePersistence (options: SqlitePersistenceOptions): Promise<SqlitePersistence> {
  if (typeof options.file !== 'string' || options.file === '') {
    throw new TypeError(`"file" expected a non-empty path, got ${JSON.stringify(options.file)}`)
  }
  const durability = options.durability ?? 'fsync'
  if (durability !== 'fsync' && durability !== 'sqlite-full' && durability !== 'os') {
    throw new TypeError(`"durability" expected 'fsync', 'sqlite-full' or 'os', got ${JSON.stringify(durability)}`)
  }
  const batchOpsMax = options.batchOpsMax ?? BATCH_OPS_MAX
  if (!Number.isInteger(batchOpsMax) || batchOpsMax < 1) {
    throw new TypeError(`"batchOpsMax" expected a positive integer, got ${String(batchOpsMax)}`)
  }
  const hotRowsMax = options.hotRowsMax ?? HOT_ROWS_MAX
  if (!Number.isInteger(hotRowsMax) || hotRowsMax < 0) {
    throw new TypeError(`"hotRowsMax" expected an integer ≥ 0, got ${String(hotRowsMax)}`)
  }
  if (options.file !== ':memory:') mkdirSync(dirname(options.file), { recursive: true, mode: 0o700 })
  const db = new BetterSqlite3(options.file)
  try {
    db.pragma(`busy_timeout = ${BUSY_TIMEOUT_MS}`)
    // Exclusive: one process owns the queues (the in-memory matcher would go stale under a
    // second writer), and in WAL mode it also keeps the WAL index in heap memory.
    db.pragma('locking_mode = EXCLUSIVE')
    db.pragma('journal_mode = WAL')
    // With 'fsync' SQLite runs at NORMAL and the WAL is fsynced by wal-sync.ts instead.
    db.pragma(`synchronous = ${durability === 'sqlite-full' ? 'FULL' : 'NORMAL'}`)
    // After a checkpoint, cut the WAL back so that one burst does not keep a large file.
    db.pragma('journal_size_limit = 67108864')
    prepareSchema(db)
    const wal = durability === 'fsync' && options.file !== ':memory:' ? walSync(options.file) : null
    return new SqlitePersistence(db, { log: options.log?.child({ module: 'sqlite-persistence' }), batchOpsMax, hotRowsMax, wal })
  } catch (err) {
    db.close()
    throw err
  }
}

export class SqlitePersistence {
  readonly #db: Database
  readonly #commit: GroupCommit
  readonly #wal: WalSync | null
  readonly #log: Logger | undefined
  readonly #stmt: Statements
  /** clientId → topic filter → record, every qos; the durable copy is mqtt_subscriptions. */
  readonly #subscriptions = new Map<string, Map<string, SubscriptionRecord>>()
  /** The QoS ≥ 1 subscriptions, for subscriptionsByTopic. */
  readonly #trie: QlobberSub = new QlobberSubClass(QLOBBER_OPTIONS)
  readonly #retainedTopics = new Set<string>()
  readonly #writeSubscriptions: (clientId: string, records: Array<[string, SubscriptionRecord]>) => void
  readonly #deleteSubscriptions: (clientId: string, topics: string[]) => void
  readonly #insertOutgoingMany: (clientIds: string[], values: PacketValues) => number
  /** The recently queued packets (hot-rows.ts); SQLite has them all. */
  readonly #hot: HotRows
  /** The last queue position handed out; only grows while the file is open. */
  #seq = 0
  #broker: PersistenceBroker | null = null
  #destroyed = false

  /** Use createSqlitePersistence, which opens the file and prepares the schema. */
  constructor (db: Database, options: { log?: Logger, batchOpsMax?: number, hotRowsMax?: number, wal?: WalSync | null }) {
    this.#db = db
    this.#hot = new HotRows({ rowsMax: options.hotRowsMax })
    this.#log = options.log
    this.#wal = options.wal ?? null
    this.#commit = new GroupCommit(db, {
      opsMax: options.batchOpsMax,
      sync: this.#wal?.sync ?? null,
      onCommitError: err => this.#recoverFromCommitError(err),
      // The writes are committed but perhaps not on disk: their callers were told so (a
      // rejection); what is in the file stays consistent, SQLite's checksums see to that.
      onSyncError: err => this.#log?.error({ err }, 'MQTT persistence fsync failed'),
    })
    this.#stmt = prepareStatements(db)
    this.#writeSubscriptions = db.transaction((clientId: string, records: Array<[string, SubscriptionRecord]>) => {
      for (const [topic, record] of records) {
        this.#stmt.upsertSubscription.run(clientId, topic, record.qos, JSON.stringify(record))
      }
    })
    this.#deleteSubscriptions = db.transaction((clientId: string, topics: string[]) => {
      for (const topic of topics) this.#stmt.deleteSubscription.run(clientId, topic)
    })
    // Returns the first seq used; the clients got consecutive ones.
    this.#insertOutgoingMany = db.transaction((clientIds: string[], values: PacketValues) => {
      const first = this.#seq + 1
      for (const clientId of clientIds) this.#stmt.insertOutgoing.run(++this.#seq, clientId, ...values)
      return first
    })
    this.#loadIndexes()
    this.#log?.info({
      clients: this.#subscriptions.size,
      subscriptions: this.#trie.subscriptionsCount,
      retained: this.#retainedTopics.size,
      queued: this.#stmt.outgoingCount.get()?.n ?? 0,
    }, 'MQTT persistence opened')
  }

  /** The broker given to setup (the abstract test suite reads it). */
  get broker (): PersistenceBroker | null {
    return this.#broker
  }

  /** Commits and fsyncs so far, the operations they settled and the time they took. */
  get commitStats (): Readonly<GroupCommitStats> {
    return this.#commit.stats
  }

  /** Aedes calls this from listen(); it must be an `async function` (Aedes checks). */
  async setup (broker: PersistenceBroker): Promise<void> {
    this.#broker = broker
  }

  /**
   * Stores a retained message, or deletes the topic's entry when the payload is empty.
   *
   * This resolves at once, before the write is durable, on purpose. Aedes runs a retained
   * publish through storeRetained and then subscriptionsByTopic and outgoingEnqueueCombi, a
   * non-retained one skips storeRetained: were storeRetained to wait for an fsync, a later
   * non-retained QoS 1 message would overtake an earlier retained one, and live subscribers
   * would drop the earlier one (its broker counter is lower). The write is in the open
   * transaction all the same, and for QoS ≥ 1 the same packet's outgoingEnqueueCombi comes
   * next and waits until a commit that includes it is fsynced (even with no subscriber):
   * when Aedes's publish callback fires, the retained message is on disk. A QoS 0 one is on
   * disk one fsync later, which is all QoS 0 promises.
   */
  storeRetained (packet: PacketLike): Promise<void> {
    return this.#commit.writeEager(() => {
      const topic = packet.topic
      if (typeof topic !== 'string') throw new TypeError(`a retained packet needs a string topic, got ${typeof topic}`)
      if (packet.payload === undefined || packet.payload.length === 0) {
        this.#stmt.deleteRetained.run(topic)
        this.#retainedTopics.delete(topic)
      } else {
        this.#stmt.upsertRetained.run(...encodePacket(packet))
        this.#retainedTopics.add(topic)
      }
    })
  }

  createRetainedStream (pattern: string): Readable {
    return this.createRetainedStreamCombi([pattern])
  }

  /**
   * The retained messages matching any of the patterns. As in aedes-persistence, a topic
   * matching two patterns comes twice; the topics are chosen when the stream is made and
   * each packet is read when the stream gets to it.
   */
  createRetainedStreamCombi (patterns: string[]): Readable {
    const topics: string[] = []
    for (const pattern of patterns) {
      if (!pattern.includes('+') && !pattern.includes('#')) {
        if (this.#retainedTopics.has(pattern)) topics.push(pattern)
        continue
      }
      const matcher = new QlobberTrueClass(QLOBBER_OPTIONS)
      matcher.add(pattern)
      for (const topic of this.#retainedTopics) {
        if (matcher.test(topic)) topics.push(topic)
      }
    }
    return Readable.from(this.#retainedPackets(topics))
  }

  addSubscriptions (client: PersistenceClient, subs: SubscriptionInput[]): Promise<void> {
    if (subs.length === 0) return this.#commit.read(() => undefined)
    return this.#commit.write(() => {
      const records = subs.map((sub): [string, SubscriptionRecord] => [sub.topic, recordOf(sub)])
      this.#writeSubscriptions(client.id, records)
      // The in-memory copy follows aedes-persistence step by step, so that a QoS 0
      // subscription replacing a QoS 1 one leaves the matcher, as it does there.
      let stored = this.#subscriptions.get(client.id)
      if (stored === undefined) {
        stored = new Map()
        this.#subscriptions.set(client.id, stored)
      }
      for (const [topic, record] of records) this.#indexSubscription(client.id, stored, topic, record)
    })
  }

  removeSubscriptions (client: PersistenceClient, topics: string[]): Promise<void> {
    const stored = this.#subscriptions.get(client.id)
    if (stored === undefined || topics.length === 0) return this.#commit.read(() => undefined)
    return this.#commit.write(() => {
      this.#deleteSubscriptions(client.id, topics)
      for (const topic of topics) {
        const record = stored.get(topic)
        if (record === undefined) continue
        if (record.qos > 0) this.#trie.remove(topic, { clientId: client.id, topic })
        stored.delete(topic)
      }
      if (stored.size === 0) this.#subscriptions.delete(client.id)
    })
  }

  /** Served from memory, so it resolves at once. */
  subscriptionsByClient (client: PersistenceClient): Promise<Array<{ topic: string } & SubscriptionRecord>> {
    const subs: Array<{ topic: string } & SubscriptionRecord> = []
    const stored = this.#subscriptions.get(client.id)
    if (stored !== undefined) {
      for (const [topic, record] of stored) subs.push({ topic, ...record })
    }
    return Promise.resolve(subs)
  }

  /** Served from memory: the QoS ≥ 1 subscriptions, and the clients with any subscription. */
  countOffline (): Promise<{ subsCount: number, clientsCount: number }> {
    return Promise.resolve({ subsCount: this.#trie.subscriptionsCount, clientsCount: this.#subscriptions.size })
  }

  /**
   * The QoS ≥ 1 subscriptions matching a topic, from the in-memory matcher. It resolves at
   * once, as the in-memory store does, so that every publish takes the same number of steps
   * to outgoingEnqueueCombi and the queue keeps the broker's order.
   */
  subscriptionsByTopic (topic: string): Promise<MatchedSubscription[]> {
    try {
      return Promise.resolve(this.#trie.match(topic))
    } catch (err) {
      return Promise.reject(err)
    }
  }

  cleanSubscriptions (client: PersistenceClient): Promise<void> {
    const stored = this.#subscriptions.get(client.id)
    if (stored === undefined) return this.#commit.read(() => undefined)
    return this.#commit.write(() => {
      this.#stmt.deleteClientSubscriptions.run(client.id)
      for (const [topic, record] of stored) {
        if (record.qos > 0) this.#trie.remove(topic, { clientId: client.id, topic })
      }
      this.#subscriptions.delete(client.id)
    })
  }

  outgoingEnqueue (sub: { clientId: string }, packet: PacketLike): Promise<void> {
    return this.outgoingEnqueueCombi([sub], packet)
  }

  /**
   * Queues a copy of the packet for each subscriber, and resolves once the copies are on
   * disk, after every earlier call (even with no subscriber: the broker's order must hold).
   *
   * A client listed twice (overlapping filters, `a/#` and `a/b`) gets one copy, where the
   * in-memory store queues two and relies on outgoingClearMessageId removing a packet
   * without id for the second delivery, which Aedes drops as a duplicate; this store does
   * not do that removal (see outgoingClearMessageId), so it must not queue the duplicate.
   */
  outgoingEnqueueCombi (subs: Array<{ clientId: string }>, packet: PacketLike): Promise<void> {
    if (subs.length === 0) return this.#commit.read(() => undefined)
    return this.#commit.write(() => {
      const copy = queuedCopy(packet, false)
      const values = encodePacket(copy)
      if (subs.length === 1) {
        this.#stmt.insertOutgoing.run(this.#seq + 1, subs[0].clientId, ...values)
        this.#hot.add(++this.#seq, subs[0].clientId, copy)
      } else {
        const clientIds = [...new Set(subs.map(sub => sub.clientId))]
        const first = this.#insertOutgoingMany(clientIds, values)
        // Each client's copy gets its own id, so each needs its own object.
        clientIds.forEach((clientId, i) => this.#hot.add(first + i, clientId, { ...copy }))
      }
      this.#hot.evict(row => this.#stmt.setOutgoingIdBySeq.run(row.packet.messageId ?? null, row.seq))
    })
  }

  /**
   * Records the id a queued packet was sent with (the queued copy with the same broker id
   * and counter), or replaces a queued packet by its PUBREL (the queued copy with the same
   * message id, from another broker or none). The in-memory store takes whichever comes
   * first in the queue; this one tries the exact (broker, counter) match first, so that a
   * packet from before a restart whose id happens to equal a new packet's id is not replaced
   * by the new one.
   *
   * For a QoS 1 PUBLISH this resolves at once, before the write is durable, on purpose (and
   * for a packet queued lately the id is only kept in memory, hot-rows.ts). Aedes waits for
   * it before writing the packet to the subscriber, so every delivery wave of Aedes
   * (`concurrency`, 100 deliveries by default) would wait for an fsync: with SQLite's FULL
   * that halved the throughput (bench/persistence.ts). Losing this write in a crash loses no
   * message: the queued copy was made durable by outgoingEnqueueCombi; it only goes out
   * again after the restart with a new id, which QoS 1 allows (a lost PUBACK does the same).
   * For QoS 2 the id must be on disk before the packet is sent (a resend with a new id would
   * be a second message to the receiver), and a PUBREL must be too: those wait.
   */
  outgoingUpdate (client: PersistenceClient, packet: PacketLike): Promise<void> {
    const messageId = typeof packet.messageId === 'number' ? packet.messageId : undefined
    const eager = packet.cmd === 'publish' && packet.qos === 1
    const hot = typeof packet.brokerId === 'string' && typeof packet.brokerCounter === 'number'
      ? this.#hot.byCounter(client.id, packet.brokerId, packet.brokerCounter)
      : undefined
    // The live path: a QoS 1 packet queued lately gets its id in memory only (hot-rows.ts),
    // unless another queued packet of the client holds that id there.
    if (hot !== undefined && eager && !this.#destroyed && this.#hot.setMessageId(hot, messageId, false)) return Promise.resolve()
    const update = (): void => {
      if (hot !== undefined) {
        this.#stmt.setOutgoingIdBySeq.run(messageId ?? null, hot.seq)
        this.#hot.setMessageId(hot, messageId, true)
        return
      }
      if (typeof packet.brokerId === 'string' && typeof packet.brokerCounter === 'number') {
        const updated = this.#stmt.setOutgoingIdByCounter.get(messageId ?? null, client.id, packet.brokerCounter, packet.brokerId)
        if (updated !== undefined) {
          const row = this.#hot.bySeq(updated.seq)
          if (row !== undefined) this.#hot.setMessageId(row, messageId, true)
          return
        }
      }
      if (messageId !== undefined) {
        // A packet replaced by its PUBREL: in memory first, where an id may be kept alone.
        let seq: number | undefined
        const row = this.#hot.byMessageId(client.id, messageId)
        if (row !== undefined && (typeof packet.brokerId !== 'string' || row.packet.brokerId !== packet.brokerId)) {
          seq = row.seq
        } else {
          seq = typeof packet.brokerId === 'string'
            ? this.#stmt.outgoingSeqByMessageIdOtherBroker.get(client.id, messageId, packet.brokerId)?.seq
            : this.#stmt.outgoingSeqByMessageId.get(client.id, messageId)?.seq
        }
        if (seq !== undefined) {
          this.#stmt.replaceOutgoing.run(...encodePacket(packet), seq)
          // The row is no longer the queued copy: SQLite alone holds it from now on.
          this.#hot.deleteSeq(seq)
          return
        }
      }
      throw new Error('no such packet')
    }
    return eager ? this.#commit.writeEager(update) : this.#commit.write(update)
  }

  /**
   * Removes the first queued packet with this message id and resolves with it (Aedes emits
   * it as the 'ack' event).
   *
   * A packet without a message id removes nothing. The in-memory store would remove the
   * first queued packet that has no id yet: Aedes asks for that when a live delivery is
   * dropped as a duplicate, which also happens when a packet arrives after one with a higher
   * broker counter, and then the queued copy is the only one left. Keeping it costs a
   * duplicate at the next reconnect; removing it would lose the message.
   */
  outgoingClearMessageId (client: PersistenceClient, packet: PacketLike): Promise<PacketLike | undefined> {
    const messageId = packet?.messageId
    if (typeof messageId !== 'number') return this.#commit.read(() => undefined)
    return this.#commit.write(() => {
      const hot = this.#hot.byMessageId(client.id, messageId)
      if (hot !== undefined) {
        this.#stmt.deleteOutgoingBySeq.run(hot.seq)
        this.#hot.delete(hot)
        return { ...hot.packet }
      }
      const row = this.#stmt.clearOutgoing.get(client.id, messageId)
      if (row === undefined) return undefined
      this.#hot.deleteSeq(row.seq)
      return decodePacket(row)
    })
  }

  /**
   * The client's queue in order, as it stood when the stream was made (later packets reach
   * a connected client live). It is read a page at a time, so a large backlog is not loaded
   * whole, and a packet removed meanwhile is skipped.
   */
  outgoingStream (client: PersistenceClient): Readable {
    return Readable.from(this.#outgoingPackets(client.id, this.#seq))
  }

  incomingStorePacket (client: PersistenceClient, packet: PacketLike): Promise<void> {
    return this.#commit.write(() => {
      this.#stmt.upsertIncoming.run(client.id, ...encodePacket(queuedCopy(packet, true)))
    })
  }

  incomingGetPacket (client: PersistenceClient, packet: PacketLike): Promise<PacketLike> {
    return this.#commit.read(() => {
      const row = typeof packet.messageId === 'number' ? this.#stmt.getIncoming.get(client.id, packet.messageId) : undefined
      if (row === undefined) throw new Error('no such packet')
      return decodePacket(row)
    })
  }

  incomingDelPacket (client: PersistenceClient, packet: PacketLike): Promise<void> {
    return this.#commit.write(() => {
      const deleted = typeof packet.messageId === 'number' ? this.#stmt.deleteIncoming.run(client.id, packet.messageId).changes : 0
      if (deleted === 0) throw new Error('no such packet')
    })
  }

  /** [MQTT-3.1.2-6]: a clean session drops the client's inbound QoS 2 state. */
  cleanIncoming (client: PersistenceClient): Promise<void> {
    return this.#commit.write(() => {
      this.#stmt.deleteClientIncoming.run(client.id)
    })
  }

  /** Stores the client's will, stamping it with the broker's id and the client's id as the in-memory store does (on the caller's object). */
  putWill (client: PersistenceClient, packet: PacketLike): Promise<void> {
    return this.#commit.write(() => {
      if (this.#broker === null) throw new Error('putWill before setup(): no broker id to stamp the will with')
      packet.brokerId = this.#broker.id
      packet.clientId = client.id
      this.#stmt.upsertWill.run(client.id, ...encodePacket(packet))
    })
  }

  getWill (client: PersistenceClient): Promise<PacketLike | undefined> {
    return this.#commit.read(() => {
      const row = this.#stmt.getWill.get(client.id)
      return row === undefined ? undefined : decodePacket(row)
    })
  }

  /** Deletes and returns the client's will, whichever broker stored it (as the in-memory store does). */
  delWill (client: PersistenceClient): Promise<PacketLike | undefined> {
    return this.#commit.write(() => {
      const row = this.#stmt.deleteWill.get(client.id)
      return row === undefined ? undefined : decodePacket(row)
    })
  }

  /**
   * The wills of brokers not in `brokers` (the ids Aedes heard a heartbeat from lately).
   * After a restart the broker has a new id, so the wills of clients that were connected at
   * the crash come out here and Aedes publishes them, as it should.
   */
  streamWill (brokers: Record<string, unknown> = {}): Readable {
    return Readable.from(this.#willsOfOtherBrokers(brokers))
  }

  /** The clients subscribed to exactly this topic filter. */
  getClientList (topic: string): Readable {
    const clientIds: string[] = []
    for (const [clientId, stored] of this.#subscriptions) {
      if (stored.has(topic)) clientIds.push(clientId)
    }
    return Readable.from(clientIds)
  }

  /** Commits and fsyncs what is pending and closes the file. Safe to call twice; later calls reject. */
  async destroy (): Promise<void> {
    if (this.#destroyed) return
    this.#destroyed = true
    // The ids kept in memory only go to the file, so that a client resuming after this
    // orderly stop gets its in-flight packets again with their original ids [MQTT-4.4.0-1].
    void this.#commit.writeEager(() => this.#persistHotIds()).catch(err => this.#log?.error({ err }, 'MQTT persistence could not store the in-flight ids'))
    await this.#commit.close()
    this.#db.close()
    this.#wal?.close()
    this.#log?.info('MQTT persistence closed')
  }

  * #retainedPackets (topics: string[]): Generator<PacketLike> {
    for (const topic of topics) {
      const row = this.#stmt.getRetained.get(topic)
      if (row !== undefined) yield decodePacket(row)
    }
  }

  * #outgoingPackets (clientId: string, lastSeq: number): Generator<PacketLike> {
    let after = 0
    for (;;) {
      const rows = this.#stmt.outgoingPage.all(clientId, after, lastSeq, STREAM_PAGE_ROWS)
      for (const row of rows) {
        after = row.seq
        const packet = decodePacket(row)
        // The id a packet was last sent with may be in memory only (hot-rows.ts).
        const hot = this.#hot.bySeq(row.seq)
        if (hot !== undefined && !hot.idPersisted) packet.messageId = hot.packet.messageId
        yield packet
      }
      if (rows.length < STREAM_PAGE_ROWS) return
    }
  }

  * #willsOfOtherBrokers (brokers: Record<string, unknown>): Generator<PacketLike> {
    let after = 0
    for (;;) {
      const rows = this.#stmt.willPage.all(after, STREAM_PAGE_ROWS)
      for (const row of rows) {
        after = row.rowid
        const will = decodePacket(row)
        if (typeof will.brokerId !== 'string' || !brokers[will.brokerId]) yield will
      }
      if (rows.length < STREAM_PAGE_ROWS) return
    }
  }

  #persistHotIds (): void {
    for (const row of this.#hot.unpersisted()) {
      this.#stmt.setOutgoingIdBySeq.run(row.packet.messageId ?? null, row.seq)
      row.idPersisted = true
    }
  }

  #indexSubscription (clientId: string, stored: Map<string, SubscriptionRecord>, topic: string, record: SubscriptionRecord): void {
    const previous = stored.get(topic)
    if (record.qos > 0) {
      this.#trie.add(topic, { clientId, topic, qos: record.qos, rh: record.rh, rap: record.rap, nl: record.nl })
    } else if (previous !== undefined && previous.qos > 0) {
      this.#trie.remove(topic, { clientId, topic })
    }
    stored.set(topic, record)
  }

  /** Fills the in-memory matcher, the retained topics and the queue position from the file. */
  #loadIndexes (): void {
    this.#subscriptions.clear()
    this.#trie.clear()
    this.#retainedTopics.clear()
    for (const row of this.#stmt.allSubscriptions.iterate()) {
      let stored = this.#subscriptions.get(row.client_id)
      if (stored === undefined) {
        stored = new Map()
        this.#subscriptions.set(row.client_id, stored)
      }
      this.#indexSubscription(row.client_id, stored, row.topic, recordOf({ topic: row.topic, ...JSON.parse(row.record) }))
    }
    for (const row of this.#stmt.retainedTopics.iterate()) this.#retainedTopics.add(row.topic)
    this.#seq = Math.max(this.#seq, this.#stmt.maxOutgoingSeq.get()?.seq ?? 0)
  }

  /**
   * A failed COMMIT rolled the group back: its callers were rejected, but the in-memory
   * matcher and retained topics already held their changes, so they are rebuilt from the
   * file, which is the truth.
   */
  #recoverFromCommitError (err: unknown): void {
    this.#log?.error({ err }, 'MQTT persistence commit failed; the group was rolled back')
    // Rows of the rolled-back group may be among the hot ones; the ids kept in memory only
    // are lost with them, which costs a resend with a new id at most (hot-rows.ts).
    this.#hot.clear()
    try {
      this.#loadIndexes()
    } catch (loadErr) {
      this.#log?.error({ err: loadErr }, 'MQTT persistence could not reload its indexes')
    }
  }
}

/** The record aedes-persistence keeps: always these four keys, the identifier only when present. */
function recordOf (sub: SubscriptionInput): SubscriptionRecord {
  const record: SubscriptionRecord = { qos: sub.qos, rh: sub.rh, rap: sub.rap, nl: sub.nl }
  if (sub.subscriptionIdentifier !== undefined) record.subscriptionIdentifier = sub.subscriptionIdentifier
  return record
}

function prepareStatements (db: Database): Statements {
  return {
    upsertSubscription: db.prepare(`INSERT INTO mqtt_subscriptions (client_id, topic, qos, record) VALUES (?, ?, ?, ?)
      ON CONFLICT (client_id, topic) DO UPDATE SET qos = excluded.qos, record = excluded.record`),
    deleteSubscription: db.prepare('DELETE FROM mqtt_subscriptions WHERE client_id = ? AND topic = ?'),
    deleteClientSubscriptions: db.prepare('DELETE FROM mqtt_subscriptions WHERE client_id = ?'),
    allSubscriptions: db.prepare('SELECT client_id, topic, record FROM mqtt_subscriptions'),
    upsertRetained: db.prepare(`INSERT OR REPLACE INTO mqtt_retained (${PACKET_COLUMNS}) VALUES (${PACKET_PLACEHOLDERS})`),
    deleteRetained: db.prepare('DELETE FROM mqtt_retained WHERE topic = ?'),
    getRetained: db.prepare(`SELECT ${PACKET_COLUMNS} FROM mqtt_retained WHERE topic = ?`),
    retainedTopics: db.prepare('SELECT topic FROM mqtt_retained'),
    insertOutgoing: db.prepare(`INSERT INTO mqtt_outgoing (seq, client_id, ${PACKET_COLUMNS}) VALUES (?, ?, ${PACKET_PLACEHOLDERS})`),
    setOutgoingIdByCounter: db.prepare(`UPDATE mqtt_outgoing SET message_id = ? WHERE seq = (
      SELECT seq FROM mqtt_outgoing WHERE client_id = ? AND broker_counter = ? AND broker_id = ? ORDER BY seq LIMIT 1) RETURNING seq`),
    setOutgoingIdBySeq: db.prepare('UPDATE mqtt_outgoing SET message_id = ? WHERE seq = ?'),
    deleteOutgoingBySeq: db.prepare('DELETE FROM mqtt_outgoing WHERE seq = ?'),
    outgoingSeqByMessageId: db.prepare('SELECT seq FROM mqtt_outgoing WHERE client_id = ? AND message_id = ? ORDER BY seq LIMIT 1'),
    outgoingSeqByMessageIdOtherBroker: db.prepare(`SELECT seq FROM mqtt_outgoing WHERE client_id = ? AND message_id = ?
      AND (broker_id IS NULL OR broker_id <> ?) ORDER BY seq LIMIT 1`),
    replaceOutgoing: db.prepare(`UPDATE mqtt_outgoing SET ${PACKET_ASSIGNMENTS} WHERE seq = ?`),
    clearOutgoing: db.prepare(`DELETE FROM mqtt_outgoing WHERE seq = (
      SELECT seq FROM mqtt_outgoing WHERE client_id = ? AND message_id = ? ORDER BY seq LIMIT 1) RETURNING seq, ${PACKET_COLUMNS}`),
    outgoingPage: db.prepare(`SELECT seq, ${PACKET_COLUMNS} FROM mqtt_outgoing
      WHERE client_id = ? AND seq > ? AND seq <= ? ORDER BY seq LIMIT ?`),
    maxOutgoingSeq: db.prepare('SELECT MAX(seq) AS seq FROM mqtt_outgoing'),
    outgoingCount: db.prepare('SELECT COUNT(*) AS n FROM mqtt_outgoing'),
    upsertIncoming: db.prepare(`INSERT OR REPLACE INTO mqtt_incoming (client_id, ${PACKET_COLUMNS}) VALUES (?, ${PACKET_PLACEHOLDERS})`),
    getIncoming: db.prepare(`SELECT ${PACKET_COLUMNS} FROM mqtt_incoming WHERE client_id = ? AND message_id = ?`),
    deleteIncoming: db.prepare('DELETE FROM mqtt_incoming WHERE client_id = ? AND message_id = ?'),
    deleteClientIncoming: db.prepare('DELETE FROM mqtt_incoming WHERE client_id = ?'),
    upsertWill: db.prepare(`INSERT OR REPLACE INTO mqtt_wills (client_id, ${PACKET_COLUMNS}) VALUES (?, ${PACKET_PLACEHOLDERS})`),
    getWill: db.prepare(`SELECT ${PACKET_COLUMNS} FROM mqtt_wills WHERE client_id = ?`),
    deleteWill: db.prepare(`DELETE FROM mqtt_wills WHERE client_id = ? RETURNING ${PACKET_COLUMNS}`),
    willPage: db.prepare(`SELECT rowid, ${PACKET_COLUMNS} FROM mqtt_wills WHERE rowid > ? ORDER BY rowid LIMIT ?`),
  }
}
