/**
 * The device client: publish envelopes to the hub and get its Acks back as promises,
 * batch and compress them, keep them through disconnects, and receive what the hub and
 * services send down (protocol-v1 §3–§5).
 *
 * The life of a publish: validated and given its 16-byte id at once → queued in the
 * outbox (bounded; see outbox.ts) → cut into a batch within `batch.maxDelayMs` → encoded
 * and signed as it goes on the wire, so its `ts` is the transmission time and an outage
 * longer than the hub's skew window does not make it stale → in flight until its Ack (or
 * its PUBACK when `ack: false`). If the connection drops first, it goes back to the front
 * of the outbox and is sent again after the reconnect with the same id: the hub accepts it
 * once and answers a repeat with `replay`, which resolves the promise as delivered.
 */
import { randomBytes } from '@noble/hashes/utils.js'
import {
  DOWN_TYPES, MUST_SIGN_TYPES, MessageType, REJECT_CODES, ReplayGuard, UP_TYPES,
  bodyProblem, encodeBatch, encodeCbor, encodeEnvelope, idBytes, parsePayload, signEnvelope, toHex, validateBody,
  type ParsedItem, type Signer,
} from '../src/protocol/index.js'
import { resolveReconnectOptions, type ReconnectOptions } from './backoff.js'
import { Connection, waitConnected, type ConnectionOptions, type ReconnectingInfo } from './connection.js'
import { TypedEmitter } from './emitter.js'
import {
  AckError, ArgumentError, ClosedError, MetanodeSdkError, PayloadTooLargeError, QueueFullError, TimeoutError,
} from './errors.js'
import { publicKeyBytes, signerFor, verify, type KeyPair } from './keys.js'
import {
  typeCode, typeName, type Ack, type AckBody, type DownBodies, type DownTypeName, type Fields, type StateDelta,
  type UpBodies, type UpTypeName,
} from './messages.js'
import { Outbox, takeBatch, type QueueFullPolicy } from './outbox.js'
import { requireHubUrl, requireInt, stripUndefined } from './validate.js'
import { verifyEnvelope } from './verify.js'

export interface BatchOptions {
  /** Envelopes per MQTT payload, 1 to 256. */
  maxItems: number
  /** How long a message may wait for others to share its batch, in ms. Prio 0 never waits. */
  maxDelayMs: number
  /** Bytes per batch payload. A single envelope larger than this is sent alone. */
  maxBytes: number
}

export interface DeviceClientOptions {
  /** mqtt://, mqtts://, ws:// or wss:// (WebSocket: the hub's HTTP port, path /mqtt). */
  url: string
  keyPair: KeyPair
  /** The hub node's id: Acks from any other src are ignored. */
  hubId?: string
  /** The hub node's public key: Acks must then be signed by it (hubs with `signAcks`). */
  hubPublicKey?: Uint8Array | string
  /** Default wait for an Ack once a message is on the wire, in ms. Time offline does not count. */
  ackTimeoutMs?: number
  batch?: Partial<BatchOptions>
  /** Bodies whose CBOR is larger than this are sent deflate-raw compressed (enc 1), in bytes. */
  compressAboveBytes?: number
  /** Messages waiting to be sent (offline, or beyond `inflightMax`) before `offlineQueuePolicy` applies. */
  offlineQueueMax?: number
  /** 'reject' (default): a publish into a full queue rejects at once. 'drop-oldest': the oldest, least urgent queued message is rejected instead. */
  offlineQueuePolicy?: QueueFullPolicy
  /** Messages on the wire awaiting their Ack (or PUBACK) at once; more wait in the queue. */
  inflightMax?: number
  /** The hub's payload limit, in bytes: larger envelopes are rejected here, since the hub would drop them without an Ack. */
  payloadBytesMax?: number
  reconnect?: Partial<ReconnectOptions>
  /** connect(): how long to keep trying before giving up, in ms; also each attempt's CONNACK wait. */
  connectTimeoutMs?: number
  /** MQTT keepalive, in seconds. */
  keepaliveS?: number
  /** Extra mqtt.js options: TLS `ca`/`rejectUnauthorized`, `wsOptions`, `createWebsocket`. */
  mqtt?: ConnectionOptions['mqtt']
  /** @internal How the binary password reaches mqtt.js; chosen from the environment. */
  passwordTransport?: ConnectionOptions['passwordTransport']
}

export interface PublishOptions {
  /** 0 critical, 1 high, 2 normal (default), 3 low. 0 and 1 are always signed. */
  prio?: 0 | 1 | 2 | 3
  /** Sign with the device key (COSE_Sign1). Default: only when the type or prio requires it (§4). */
  sign?: boolean
  /** Ask the hub for an Ack and resolve with it (default true). False resolves on the MQTT PUBACK. */
  ack?: boolean
  /** Compress the body. Default: when its CBOR is larger than `compressAboveBytes`. */
  compress?: boolean
  /** Wait for the Ack once on the wire, in ms (default `ackTimeoutMs`). */
  timeoutMs?: number
  /** Target principal id (envelope key 4). */
  dst?: string
  /** 16-byte envelope id, to retry a publish that timed out without risking a duplicate. */
  id?: Uint8Array
}

/** A message received on the device's `down` topic. */
export interface DownMessage<B = unknown> {
  readonly type: number
  readonly typeName: string
  readonly id: Uint8Array
  readonly src: string
  readonly dst: string | undefined
  readonly ts: number
  readonly prio: number
  readonly body: B
  /** The envelope was COSE-signed (by whom: check with `verify`). */
  readonly signed: boolean
  /** The envelope's bytes as received. */
  readonly raw: Uint8Array
  /** True when the envelope is signed by the holder of `publicKey` and that key's id is `src`. */
  verify (publicKey: Uint8Array | string): boolean
}

export type DownHandler<B = unknown> = (body: B, message: DownMessage<B>) => void | Promise<void>

/** Counters since the client was created, for logs and dashboards. */
export interface DeviceStats {
  /** Successful connections, first one included. */
  connects: number
  /** MQTT PUBLISH packets on the up topic (a batch is one). */
  payloadsSent: number
  /** Envelopes sent, resends after a reconnect included. */
  envelopesSent: number
  /** Publishes resolved by an ok (or replay) Ack, or by a PUBACK when `ack: false`. */
  delivered: number
  /** Publishes the hub rejected (AckError). */
  rejected: number
  /** Publishes that got no Ack in time (TimeoutError). */
  timedOut: number
  /** Publishes refused or dropped by the full offline queue (QueueFullError). */
  queueFull: number
}

export type DeviceEvents = {
  /** Connected and subscribed to the down topic (after every reconnect too). */
  connect: []
  /** The connection was lost; queued and unacknowledged messages wait for the next one. */
  disconnect: [error: Error | undefined]
  reconnecting: [info: ReconnectingInfo]
  /** Refused CONNECTs, undecodable down messages, throwing handlers, Acks from the wrong sender. */
  error: [error: Error]
}

const DEFAULTS = Object.freeze({
  ackTimeoutMs: 10_000,
  batch: Object.freeze({ maxItems: 64, maxDelayMs: 10, maxBytes: 16 * 1024 }),
  compressAboveBytes: 1024,
  offlineQueueMax: 1_000,
  offlineQueuePolicy: 'reject' as QueueFullPolicy,
  inflightMax: 256,
  // The hub's default limit (config.protocol.payloadBytesMax).
  payloadBytesMax: 64 * 1024,
  connectTimeoutMs: 30_000,
  keepaliveS: 30,
})

const ID_BYTES = 16
const PRIO_DEFAULT = 2
// Down ids remembered to drop QoS 1 redeliveries; a bounded window is enough for that.
const DOWN_IDS_WINDOW_MS = 10 * 60_000
const DOWN_IDS_MAX = 4_096

interface Pending {
  readonly seq: number
  readonly prio: number
  readonly type: number
  readonly body: unknown
  readonly id: Uint8Array
  readonly idHex: string
  readonly sign: boolean
  readonly ack: boolean
  readonly compress: boolean
  readonly dst: string | undefined
  readonly timeoutMs: number
  state: 'queued' | 'sent' | 'done'
  /** Counts transmissions, so that a PUBACK from an earlier connection is not taken for this one. */
  transmission: number
  /** The encoding cut for a batch it did not fit in, reused by the next one. */
  encoded: Uint8Array | null
  timer: ReturnType<typeof setTimeout> | null
  settledWaiters: Array<() => void>
  resolve (value: Ack | undefined): void
  reject (error: Error): void
}

interface ResolvedOptions {
  ackTimeoutMs: number
  batch: BatchOptions
  compressAboveBytes: number
  payloadBytesMax: number
  inflightMax: number
  connectTimeoutMs: number
}

export class DeviceClient extends TypedEmitter<DeviceEvents> {
  /** The device's principal id. */
  readonly id: string
  readonly #options: ResolvedOptions
  readonly #signer: Signer
  readonly #kid: Uint8Array
  readonly #hubId: string | undefined
  readonly #hubPublicKey: Uint8Array | undefined
  readonly #connection: Connection
  readonly #outbox: Outbox<Pending>
  readonly #pending = new Map<string, Pending>()
  readonly #handlers = new Map<number | '*', Set<DownHandler<any>>>()
  readonly #seenDown = new ReplayGuard({ windowMs: DOWN_IDS_WINDOW_MS, perKeyMax: DOWN_IDS_MAX, totalMax: DOWN_IDS_MAX })
  readonly #upTopic: string
  #inflight = 0
  #seq = 0
  readonly #stats: DeviceStats = { connects: 0, payloadsSent: 0, envelopesSent: 0, delivered: 0, rejected: 0, timedOut: 0, queueFull: 0 }
  #drainTimer: ReturnType<typeof setTimeout> | null = null
  #drainDueMs = Infinity
  #closing: Promise<void> | null = null

  constructor (options: DeviceClientOptions) {
    super()
    const resolved = resolveOptions(options)
    this.#options = resolved
    this.#signer = signerFor(options.keyPair)
    this.#kid = idBytes(options.keyPair.id)
    this.id = options.keyPair.id
    this.#hubId = options.hubId
    this.#hubPublicKey = options.hubPublicKey === undefined ? undefined : publicKeyBytes(options.hubPublicKey)
    this.#upTopic = `mn/v1/d/${this.id}/up`
    this.#outbox = new Outbox(options.offlineQueueMax ?? DEFAULTS.offlineQueueMax, options.offlineQueuePolicy ?? DEFAULTS.offlineQueuePolicy)
    this.#connection = new Connection({
      url: options.url,
      keyPair: options.keyPair,
      subscriptions: [`mn/v1/d/${this.id}/down`],
      reconnect: resolveReconnectOptions(options.reconnect),
      connectTimeoutMs: resolved.connectTimeoutMs,
      keepaliveS: options.keepaliveS ?? DEFAULTS.keepaliveS,
      mqtt: options.mqtt,
      passwordTransport: options.passwordTransport,
    })
    this.#connection.on('online', () => {
      this.#stats.connects++
      this.emit('connect')
      this.#scheduleDrain(0)
    })
    this.#connection.on('offline', error => {
      this.#takeBackInflight()
      this.emit('disconnect', error)
    })
    this.#connection.on('reconnecting', info => this.emit('reconnecting', info))
    this.#connection.on('error', error => this.emit('error', error))
    this.#connection.on('message', (_topic, payload) => this.#onDown(payload))
  }

  /** Connected and subscribed right now. */
  get connected (): boolean {
    return this.#connection.online
  }

  /** Messages waiting to go on the wire. */
  get queued (): number {
    return this.#outbox.size
  }

  /** Messages on the wire awaiting their Ack. */
  get inflight (): number {
    return this.#inflight
  }

  get stats (): Readonly<DeviceStats> {
    return { ...this.#stats }
  }

  /**
   * Connects and resolves once connected and subscribed. Rejects with ConnectError when
   * the hub refuses the CONNECT (not enrolled, revoked, clock skew) and with TimeoutError
   * after `connectTimeoutMs`; the client is then closed. For a device that must start
   * offline and connect whenever it can, use `start()` instead.
   */
  async connect (): Promise<this> {
    this.start()
    try {
      await waitConnected(this.#connection, this.#options.connectTimeoutMs)
      return this
    } catch (err) {
      await this.close()
      throw err
    }
  }

  /** Starts connecting in the background and keeps reconnecting until `close()`; publishes queue meanwhile. */
  start (): this {
    if (this.#closing) throw new ClosedError()
    this.#connection.start()
    return this
  }

  /**
   * Sends one message. With `ack` (the default) resolves with the hub's Ack and rejects
   * with AckError (the hub refused it), TimeoutError, QueueFullError, PayloadTooLargeError
   * or ClosedError; with `ack: false` resolves once the hub has taken it (PUBACK).
   * Types and priorities that must be signed (§4) are signed automatically.
   */
  publish<N extends UpTypeName> (type: N, body: UpBodies[N], options?: PublishOptions & { ack?: true }): Promise<Ack>
  publish<N extends UpTypeName> (type: N, body: UpBodies[N], options: PublishOptions & { ack: false }): Promise<void>
  publish (type: number, body: unknown, options?: PublishOptions & { ack?: true }): Promise<Ack>
  publish (type: number, body: unknown, options: PublishOptions & { ack: false }): Promise<void>
  publish (type: UpTypeName | number, body: unknown, options?: PublishOptions): Promise<Ack | void>
  publish (type: UpTypeName | number, body: unknown, options: PublishOptions = {}): Promise<Ack | void> {
    try {
      return this.#enqueue(type, body, options)
    } catch (err) {
      return Promise.reject(err)
    }
  }

  /** Reports the device's state document (StateUpdate up: `{ reported }`). */
  reportState (reported: Fields, options?: PublishOptions & { ack?: true }): Promise<Ack> {
    return this.publish('StateUpdate', { reported }, options)
  }

  /**
   * Handles messages of one type arriving on the down topic ('*' for every type except
   * Acks, which resolve publishes). Returns a function that removes the handler.
   */
  onMessage<N extends DownTypeName> (type: N, handler: DownHandler<DownBodies[N]>): () => void
  onMessage (type: number | '*', handler: DownHandler): () => void
  onMessage (type: DownTypeName | number | '*', handler: DownHandler<any>): () => void {
    const key = type === '*' ? '*' : typeCode(type)
    if (key !== '*' && (!DOWN_TYPES.has(key) || key === MessageType.Ack)) {
      throw new ArgumentError(`${typeName(key)} (${key}) never reaches a device's handlers (Acks settle publishes)`)
    }
    let set = this.#handlers.get(key)
    if (!set) {
      set = new Set()
      this.#handlers.set(key, set)
    }
    set.add(handler)
    return () => { set.delete(handler) }
  }

  /** ConfigurationUpdate (type 2): the new configuration map. */
  onConfig (handler: DownHandler<Fields>): () => void {
    return this.onMessage('ConfigurationUpdate', handler)
  }

  /** StateUpdate down (type 41): `{ delta, version }`, the desired state not yet reported. */
  onStateDelta (handler: DownHandler<StateDelta>): () => void {
    return this.onMessage('StateUpdate', handler)
  }

  /**
   * Every down message that is not an Ack, a ConfigurationUpdate or a StateUpdate delta:
   * what a service or the hub asks of the device beyond configuration and state.
   * Protocol v1 has no dedicated command type, so a command is whatever the project sends
   * that way; `message.type` says which.
   */
  onCommand (handler: DownHandler): () => void {
    return this.onMessage('*', (body, message) => {
      if (message.type === MessageType.ConfigurationUpdate || message.type === MessageType.StateUpdate) return
      return handler(body, message)
    })
  }

  /** Resolves when every publish pending now has settled (resolved or rejected). */
  async flush (): Promise<void> {
    const waits = [...this.#pending.values()].map(pending => new Promise<void>(resolve => pending.settledWaiters.push(resolve)))
    await Promise.all(waits)
  }

  /**
   * Closes the connection and rejects every pending publish with ClosedError (call
   * `flush()` first to wait for them). Idempotent.
   */
  close (): Promise<void> {
    this.#closing ??= (async () => {
      if (this.#drainTimer) clearTimeout(this.#drainTimer)
      this.#drainTimer = null
      const error = new ClosedError('the client was closed before the hub acknowledged this message')
      this.#outbox.clear()
      for (const pending of [...this.#pending.values()]) this.#settle(pending, error, { alreadyDequeued: true })
      await this.#connection.close()
      this.#handlers.clear()
    })()
    return this.#closing
  }

  #enqueue (type: UpTypeName | number, body: unknown, options: PublishOptions): Promise<Ack | void> {
    if (this.#closing) throw new ClosedError()
    const code = typeCode(type)
    if (!UP_TYPES.has(code)) throw new ArgumentError(`${typeName(code)} (${code}) is not a type a device may send`)
    const prio = options.prio ?? PRIO_DEFAULT
    if (!Number.isInteger(prio) || prio < 0 || prio > 3) throw new ArgumentError(`prio must be 0, 1, 2 or 3, got ${String(prio)}`)
    const mustSign = prio <= 1 || MUST_SIGN_TYPES.has(code)
    if (options.sign === false && mustSign) {
      throw new ArgumentError(`${typeName(code)} at prio ${prio} must be signed (protocol-v1 §4); leave sign unset`)
    }
    if (options.id !== undefined && (!(options.id instanceof Uint8Array) || options.id.length !== ID_BYTES)) {
      throw new ArgumentError(`id must be ${ID_BYTES} bytes`)
    }
    // A copy: the caller may reuse their buffer while the message waits in the queue.
    const id = options.id ? Uint8Array.from(options.id) : randomBytes(ID_BYTES)
    const idHex = toHex(id)
    if (this.#pending.has(idHex)) throw new ArgumentError(`a message with id ${idHex} is already pending`)
    const timeoutMs = options.timeoutMs ?? this.#options.ackTimeoutMs
    if (!(timeoutMs > 0)) throw new ArgumentError(`timeoutMs must be > 0, got ${String(timeoutMs)}`)
    if (options.dst !== undefined && !/^[0-9a-f]{32}$/.test(options.dst)) throw new ArgumentError('dst must be a principal id (32 lowercase hex characters)')

    // Encode the body once now: a body that CBOR cannot carry fails here, at the call
    // site, rather than later inside a batch. Its size decides compression.
    let bodyBytes = 0
    if (body !== undefined) {
      try {
        bodyBytes = encodeCbor(body).length
      } catch (err) {
        throw new ArgumentError(`the body cannot be encoded as CBOR: ${(err as Error).message}`)
      }
    }
    const compress = options.compress ?? bodyBytes > this.#options.compressAboveBytes
    if (!compress && bodyBytes > this.#options.payloadBytesMax) throw new PayloadTooLargeError(bodyBytes, this.#options.payloadBytesMax)

    const ack = options.ack ?? true
    let resolve!: (value: Ack | undefined) => void
    let reject!: (error: Error) => void
    const promise = new Promise<Ack | undefined>((res, rej) => {
      resolve = res
      reject = rej
    })
    const pending: Pending = {
      seq: this.#seq++,
      prio,
      type: code,
      body,
      id,
      idHex,
      sign: options.sign ?? mustSign,
      ack,
      compress,
      dst: options.dst,
      timeoutMs,
      state: 'queued',
      transmission: 0,
      encoded: null,
      timer: null,
      settledWaiters: [],
      resolve,
      reject,
    }
    let dropped: Pending | undefined
    try {
      dropped = this.#outbox.push(pending)
    } catch (err) {
      // Under 'reject' a full queue refuses the new message.
      if (err instanceof QueueFullError) this.#stats.queueFull++
      throw err
    }
    this.#pending.set(idHex, pending)
    if (dropped) this.#settle(dropped, new QueueFullError(this.#outbox.max, true), { alreadyDequeued: true })
    // A critical message waits for nobody, and a full batch has nothing left to wait for.
    // Sending it now (rather than on a timer) also keeps a burst of publishes flowing into
    // the connection instead of piling up against offlineQueueMax while online.
    const urgent = prio === 0 || this.#outbox.size >= this.#options.batch.maxItems
    if (urgent && this.#connection.online) this.#drain()
    else this.#scheduleDrain(this.#options.batch.maxDelayMs)
    return promise as Promise<Ack | void>
  }

  #scheduleDrain (delayMs: number): void {
    if (!this.#connection.online || this.#outbox.size === 0 || this.#closing) return
    const dueMs = Date.now() + delayMs
    if (this.#drainTimer && this.#drainDueMs <= dueMs) return
    if (this.#drainTimer) clearTimeout(this.#drainTimer)
    this.#drainDueMs = dueMs
    this.#drainTimer = setTimeout(() => this.#drain(), delayMs)
  }

  /** Sends queued messages as batches until the queue is empty or `inflightMax` is reached. */
  #drain (): void {
    if (this.#drainTimer) clearTimeout(this.#drainTimer)
    this.#drainTimer = null
    this.#drainDueMs = Infinity
    const { batch: limits, payloadBytesMax, inflightMax } = this.#options
    while (this.#connection.online && this.#outbox.size > 0 && this.#inflight < inflightMax) {
      const batch = takeBatch(this.#outbox, pending => (pending.encoded ??= this.#encode(pending)), {
        maxItems: Math.min(limits.maxItems, inflightMax - this.#inflight),
        maxBytes: Math.min(limits.maxBytes, payloadBytesMax),
        payloadBytesMax,
      })
      for (const { item, error } of batch.failed) this.#settle(item, error, { alreadyDequeued: true })
      if (batch.items.length === 0) continue
      const payload = batch.items.length === 1 ? batch.encoded[0] : encodeBatch(batch.encoded)
      this.#stats.payloadsSent++
      this.#stats.envelopesSent += batch.items.length
      const sent = batch.items.map(pending => {
        pending.state = 'sent'
        pending.encoded = null
        pending.transmission++
        this.#inflight++
        if (pending.ack) {
          pending.timer = setTimeout(() => this.#settle(pending, new TimeoutError(
            `no Ack for ${typeName(pending.type)} ${pending.idHex} within ${pending.timeoutMs} ms; it may or may not have been accepted`,
            pending.timeoutMs)), pending.timeoutMs)
        }
        return { pending, transmission: pending.transmission }
      })
      this.#connection.publish(this.#upTopic, payload).then(() => {
        for (const { pending, transmission } of sent) {
          if (!pending.ack && pending.state === 'sent' && pending.transmission === transmission) this.#settle(pending, undefined)
        }
      }, () => {
        // The connection ended before the PUBACK; 'offline' has put these back in the queue.
      })
    }
  }

  #encode (pending: Pending): Uint8Array {
    const envelope = encodeEnvelope({
      type: pending.type,
      src: this.id,
      id: pending.id,
      dst: pending.dst,
      prio: pending.prio,
      body: pending.body,
      compress: pending.compress,
      ack: pending.ack,
    })
    return pending.sign ? signEnvelope(envelope, this.#kid, this.#signer) : envelope
  }

  /** The connection dropped: everything on the wire goes back to the front of the queue. */
  #takeBackInflight (): void {
    const back: Pending[] = []
    for (const pending of this.#pending.values()) {
      // An encoding cut for a batch it did not fit in carries this moment's ts; after an
      // outage of unknown length it must be encoded afresh.
      pending.encoded = null
      if (pending.state !== 'sent') continue
      if (pending.timer) clearTimeout(pending.timer)
      pending.timer = null
      pending.state = 'queued'
      back.push(pending)
    }
    this.#inflight = 0
    this.#outbox.requeue(back)
  }

  #settle (pending: Pending, outcome: Ack | Error | undefined, { alreadyDequeued = false } = {}): void {
    if (pending.state === 'done') return
    if (pending.timer) clearTimeout(pending.timer)
    pending.timer = null
    if (pending.state === 'sent') this.#inflight--
    else if (!alreadyDequeued) this.#outbox.remove(pending)
    pending.state = 'done'
    pending.encoded = null
    this.#pending.delete(pending.idHex)
    if (outcome instanceof AckError) this.#stats.rejected++
    else if (outcome instanceof TimeoutError) this.#stats.timedOut++
    else if (outcome instanceof QueueFullError) this.#stats.queueFull++
    else if (!(outcome instanceof Error)) this.#stats.delivered++
    if (outcome instanceof Error) pending.reject(outcome)
    else pending.resolve(outcome)
    for (const wake of pending.settledWaiters) wake()
    // A slot in flight opened up for whatever is waiting.
    if (this.#outbox.size > 0 && this.#inflight < this.#options.inflightMax) this.#scheduleDrain(0)
  }

  #onDown (payload: Uint8Array): void {
    const parsed = parsePayload(payload, { payloadBytesMax: this.#options.payloadBytesMax, direction: 'down' })
    if (!parsed.ok) {
      this.emit('error', new MetanodeSdkError(`ignored an undecodable down message (${parsed.reason})`))
      return
    }
    for (const item of parsed.items) {
      const envelope = item.envelope
      if (!envelope || item.reason) {
        this.emit('error', new MetanodeSdkError(`ignored a down message rejected as "${item.reason ?? 'decode'}"`))
        continue
      }
      if (envelope.dst !== undefined && envelope.dst !== this.id) continue
      if (envelope.type === MessageType.Ack) {
        this.#onAck(item)
        continue
      }
      // QoS 1 may deliver a message twice; a handler should run once per id.
      const idHex = toHex(envelope.id)
      const nowMs = Date.now()
      if (this.#seenDown.has(envelope.src, idHex, nowMs)) continue
      this.#seenDown.add(envelope.src, idHex, nowMs)
      if (!DOWN_TYPES.has(envelope.type) || !validateBody(envelope.type, envelope.body, 'down')) {
        this.emit('error', new MetanodeSdkError(`ignored a ${typeName(envelope.type)} down message with an invalid body from ${envelope.src}`))
        continue
      }
      this.#dispatch(item)
    }
  }

  #onAck (item: ParsedItem): void {
    const envelope = item.envelope!
    if (this.#hubId !== undefined && envelope.src !== this.#hubId) {
      this.emit('error', new MetanodeSdkError(`ignored an Ack from ${envelope.src}, which is not the hub ${this.#hubId}`))
      return
    }
    if (this.#hubPublicKey && !(item.signed && item.cose && verify(item.cose.signature, item.cose.sigInput, this.#hubPublicKey))) {
      this.emit('error', new MetanodeSdkError(`ignored an Ack from ${envelope.src} without a valid signature by the hub's key`))
      return
    }
    const body = envelope.body as Partial<AckBody> | undefined
    if (!body || !(body.re instanceof Uint8Array) || typeof body.ok !== 'boolean' || typeof body.code !== 'number' || typeof body.reason !== 'string') {
      this.emit('error', new MetanodeSdkError(`ignored a malformed Ack from ${envelope.src}`))
      return
    }
    const pending = this.#pending.get(toHex(body.re))
    // An Ack for nothing pending: it timed out, or a duplicate. Nothing to do.
    if (!pending) return
    if (body.ok) {
      this.#settle(pending, { ok: true, code: 0, reason: '', result: body.result, replayed: false })
    } else if (body.code === REJECT_CODES.replay) {
      this.#settle(pending, { ok: true, code: 0, reason: '', result: undefined, replayed: true })
    } else {
      // The hub's reason is a word; when it is the body's shape, say what is wrong with it.
      const problem = body.reason === 'body' ? bodyProblem(pending.type, pending.body, 'up') : null
      this.#settle(pending, new AckError(body.code, body.reason, body.result, problem ?? undefined))
    }
  }

  #dispatch (item: ParsedItem): void {
    const envelope = item.envelope!
    const raw = item.raw
    const message: DownMessage = Object.freeze({
      type: envelope.type,
      typeName: typeName(envelope.type),
      id: envelope.id,
      src: envelope.src,
      dst: envelope.dst,
      ts: envelope.ts,
      prio: envelope.prio,
      body: envelope.body,
      signed: item.signed,
      raw,
      verify: (publicKey: Uint8Array | string) => verifyEnvelope(raw, publicKey, 'down'),
    })
    const handlers = [...(this.#handlers.get(envelope.type) ?? []), ...(this.#handlers.get('*') ?? [])]
    for (const handler of handlers) {
      try {
        const result = handler(message.body, message)
        if (result && typeof (result as Promise<void>).then === 'function') {
          (result as Promise<void>).then(undefined, err => this.emit('error', asError(err)))
        }
      } catch (err) {
        this.emit('error', asError(err))
      }
    }
  }
}

/** Creates a device client and connects it (see DeviceClient.connect). */
export async function connectDevice (options: DeviceClientOptions): Promise<DeviceClient> {
  return new DeviceClient(options).connect()
}

function resolveOptions (options: DeviceClientOptions): ResolvedOptions {
  requireHubUrl(options?.url)
  if (!options.keyPair || !(options.keyPair.secretKey instanceof Uint8Array)) throw new ArgumentError('keyPair is required (generateKeyPair, importKeyPair or a KeyStore)')
  const batch = { ...DEFAULTS.batch, ...stripUndefined(options.batch ?? {}) }
  const resolved: ResolvedOptions = {
    ackTimeoutMs: options.ackTimeoutMs ?? DEFAULTS.ackTimeoutMs,
    batch,
    compressAboveBytes: options.compressAboveBytes ?? DEFAULTS.compressAboveBytes,
    payloadBytesMax: options.payloadBytesMax ?? DEFAULTS.payloadBytesMax,
    inflightMax: options.inflightMax ?? DEFAULTS.inflightMax,
    connectTimeoutMs: options.connectTimeoutMs ?? DEFAULTS.connectTimeoutMs,
  }
  requireInt('ackTimeoutMs', resolved.ackTimeoutMs, 1)
  requireInt('batch.maxItems', batch.maxItems, 1, 256)
  requireInt('batch.maxDelayMs', batch.maxDelayMs, 0)
  requireInt('batch.maxBytes', batch.maxBytes, 1)
  requireInt('compressAboveBytes', resolved.compressAboveBytes, 0)
  requireInt('payloadBytesMax', resolved.payloadBytesMax, 1)
  requireInt('inflightMax', resolved.inflightMax, 1)
  requireInt('connectTimeoutMs', resolved.connectTimeoutMs, 1)
  requireInt('offlineQueueMax', options.offlineQueueMax ?? DEFAULTS.offlineQueueMax, 1)
  if (options.keepaliveS !== undefined) requireInt('keepaliveS', options.keepaliveS, 0, 65535)
  if (options.offlineQueuePolicy !== undefined && options.offlineQueuePolicy !== 'reject' && options.offlineQueuePolicy !== 'drop-oldest') {
    throw new ArgumentError(`offlineQueuePolicy must be 'reject' or 'drop-oldest', got ${String(options.offlineQueuePolicy)}`)
  }
  if (options.hubId !== undefined && !/^[0-9a-f]{32}$/.test(options.hubId)) throw new ArgumentError('hubId must be a principal id (32 lowercase hex characters)')
  return resolved
}

function asError (value: unknown): Error {
  return value instanceof Error ? value : new MetanodeSdkError(String(value))
}
