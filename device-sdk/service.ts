/**
 * The backend service client: receives the bridge records of protocol-v1 §6 (every
 * message the hub accepted from devices) and sends envelopes down to devices. A service
 * is an enrolled principal with role `service`; it connects exactly as a device does.
 */
import {
  DOWN_TYPES, MUST_SIGN_TYPES, decodeBridgeRecord, encodeEnvelope, idBytes, messageTypeName, signEnvelope,
} from '../src/protocol/index.js'
import { resolveReconnectOptions, type ReconnectOptions } from './backoff.js'
import { Connection, waitConnected, waitOnline, type ConnectionOptions, type ReconnectingInfo } from './connection.js'
import { TypedEmitter } from './emitter.js'
import { ArgumentError, ClosedError, MetanodeSdkError, TimeoutError } from './errors.js'
import { signerFor, type KeyPair } from './keys.js'
import { typeCode, typeName, type DownBodies, type DownTypeName, type MessageTypeName } from './messages.js'
import { requireHubUrl, requireInt } from './validate.js'
import { verifyEnvelope } from './verify.js'

export interface ServiceClientOptions {
  url: string
  keyPair: KeyPair
  /** Bridge types to receive, by name or code; all when absent (`mn/v1/bridge/#`). */
  types?: Array<MessageTypeName | number>
  /** Records buffered per `records()` iterator that is not keeping up; the oldest go first. */
  bufferMax?: number
  reconnect?: Partial<ReconnectOptions>
  /** connect(): how long to keep trying, in ms; also each attempt's CONNACK wait. */
  connectTimeoutMs?: number
  keepaliveS?: number
  mqtt?: ConnectionOptions['mqtt']
  /** @internal */
  passwordTransport?: ConnectionOptions['passwordTransport']
}

/** One accepted device message, as the hub bridged it (§6). */
export interface BridgeRecord {
  readonly topic: string
  readonly type: number
  readonly typeName: string
  /** The device's principal id. */
  readonly src: string
  /** When the hub received it, ms since the Unix epoch. */
  readonly receivedAt: number
  /** The body, decoded (and inflated when it was compressed). */
  readonly body: unknown
  /** The id of the hub node that accepted it. */
  readonly hubId: string
  /** The hub verified a device signature on it. */
  readonly signed: boolean
  /** The envelope bytes exactly as the device sent them. */
  readonly raw: Uint8Array
  /**
   * Checks the device's own signature in `raw` against the device's public key, so the
   * record's origin does not rest on trusting the hub. False for unsigned messages.
   */
  verify (publicKey: Uint8Array | string): boolean
}

export interface SendOptions {
  prio?: 0 | 1 | 2 | 3
  /** Sign with the service key. Default: only when the prio or type requires it. */
  sign?: boolean
  /** Wait for the connection and the PUBACK, in ms. */
  timeoutMs?: number
}

export type ServiceEvents = {
  connect: []
  disconnect: [error: Error | undefined]
  reconnecting: [info: ReconnectingInfo]
  /** Refused CONNECTs or subscriptions, undecodable records, throwing handlers. */
  error: [error: Error]
}

const DEFAULT_BUFFER_MAX = 10_000
const DEFAULT_CONNECT_TIMEOUT_MS = 30_000
const DEFAULT_SEND_TIMEOUT_MS = 10_000
const BRIDGE_PREFIX = 'mn/v1/bridge/'

export class ServiceClient extends TypedEmitter<ServiceEvents> {
  readonly id: string
  readonly #keyPair: KeyPair
  readonly #connection: Connection
  readonly #connectTimeoutMs: number
  readonly #bufferMax: number
  readonly #handlers = new Set<(record: BridgeRecord) => void | Promise<void>>()
  readonly #iterators = new Set<() => void>()
  #closing: Promise<void> | null = null

  constructor (options: ServiceClientOptions) {
    super()
    requireHubUrl(options?.url)
    if (!options.keyPair || !(options.keyPair.secretKey instanceof Uint8Array)) throw new ArgumentError('keyPair is required')
    this.#keyPair = options.keyPair
    this.id = options.keyPair.id
    this.#connectTimeoutMs = options.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS
    this.#bufferMax = options.bufferMax ?? DEFAULT_BUFFER_MAX
    requireInt('connectTimeoutMs', this.#connectTimeoutMs, 1)
    requireInt('bufferMax', this.#bufferMax, 1)
    const subscriptions = options.types === undefined
      ? [`${BRIDGE_PREFIX}#`]
      : options.types.map(type => {
        const name = messageTypeName(typeCode(type))
        if (!name) throw new ArgumentError(`unknown message type ${String(type)}`)
        return `${BRIDGE_PREFIX}${name}/+`
      })
    if (subscriptions.length === 0) throw new ArgumentError('types must name at least one type')
    this.#connection = new Connection({
      url: options.url,
      keyPair: options.keyPair,
      subscriptions,
      reconnect: resolveReconnectOptions(options.reconnect),
      connectTimeoutMs: this.#connectTimeoutMs,
      keepaliveS: options.keepaliveS ?? 30,
      mqtt: options.mqtt,
      passwordTransport: options.passwordTransport,
    })
    this.#connection.on('online', () => this.emit('connect'))
    this.#connection.on('offline', error => this.emit('disconnect', error))
    this.#connection.on('reconnecting', info => this.emit('reconnecting', info))
    this.#connection.on('error', error => this.emit('error', error))
    this.#connection.on('message', (topic, payload) => this.#onMessage(topic, payload))
  }

  get connected (): boolean {
    return this.#connection.online
  }

  /** Connects and resolves once subscribed; rejects (and closes) as DeviceClient.connect does. */
  async connect (): Promise<this> {
    this.start()
    try {
      await waitConnected(this.#connection, this.#connectTimeoutMs)
      return this
    } catch (err) {
      await this.close()
      throw err
    }
  }

  start (): this {
    if (this.#closing) throw new ClosedError()
    this.#connection.start()
    return this
  }

  /** Calls `handler` for every record; returns a function that removes it. */
  onRecord (handler: (record: BridgeRecord) => void | Promise<void>): () => void {
    this.#handlers.add(handler)
    return () => { this.#handlers.delete(handler) }
  }

  /**
   * The records as an async iterable: `for await (const record of service.records())`.
   * Each iterator buffers up to `bufferMax` records while its consumer is busy, dropping
   * the oldest beyond that (QoS 1 stops at this process: a slow consumer must not grow
   * memory without bound). It ends when the client closes.
   */
  records (): AsyncIterableIterator<BridgeRecord> {
    const buffer: BridgeRecord[] = []
    const waiting: Array<(result: IteratorResult<BridgeRecord>) => void> = []
    let done = this.#closing !== null
    const finish = (): void => {
      done = true
      off()
      this.#iterators.delete(finish)
      for (const wake of waiting.splice(0)) wake({ done: true, value: undefined })
    }
    const off = this.onRecord(record => {
      const wake = waiting.shift()
      if (wake) return wake({ done: false, value: record })
      if (buffer.length >= this.#bufferMax) buffer.shift()
      buffer.push(record)
    })
    this.#iterators.add(finish)
    const iterator: AsyncIterableIterator<BridgeRecord> = {
      next: () => {
        const record = buffer.shift()
        if (record) return Promise.resolve({ done: false, value: record })
        if (done) return Promise.resolve({ done: true, value: undefined })
        return new Promise(resolve => { waiting.push(resolve) })
      },
      return: () => {
        finish()
        return Promise.resolve({ done: true, value: undefined })
      },
      [Symbol.asyncIterator] () {
        return iterator
      },
    }
    if (done) finish()
    return iterator
  }

  /**
   * Sends an envelope to a device's `down` topic, from this service. Resolves when the
   * hub has taken it (PUBACK), not when the device has: the hub sends services no Acks.
   */
  async sendToDevice<N extends DownTypeName> (deviceId: string, type: N, body: DownBodies[N], options?: SendOptions): Promise<void>
  async sendToDevice (deviceId: string, type: number, body: unknown, options?: SendOptions): Promise<void>
  async sendToDevice (deviceId: string, type: DownTypeName | number, body: unknown, options: SendOptions = {}): Promise<void> {
    if (this.#closing) throw new ClosedError()
    if (!/^[0-9a-f]{32}$/.test(deviceId)) throw new ArgumentError('deviceId must be a principal id (32 lowercase hex characters)')
    const code = typeCode(type)
    if (!DOWN_TYPES.has(code)) throw new ArgumentError(`${typeName(code)} (${code}) is not a type sent to devices`)
    const prio = options.prio ?? 2
    const mustSign = prio <= 1 || MUST_SIGN_TYPES.has(code)
    if (options.sign === false && mustSign) throw new ArgumentError(`${typeName(code)} at prio ${prio} must be signed`)
    const timeoutMs = options.timeoutMs ?? DEFAULT_SEND_TIMEOUT_MS
    const envelope = encodeEnvelope({ type: code, src: this.id, dst: deviceId, prio, body })
    const payload = options.sign ?? mustSign ? signEnvelope(envelope, idBytes(this.id), signerFor(this.#keyPair)) : envelope
    const timeout = (): TimeoutError => new TimeoutError(`could not send to ${deviceId} within ${timeoutMs} ms`, timeoutMs)
    await waitOnline(this.#connection, timeoutMs, timeout)
    let timer: ReturnType<typeof setTimeout> | undefined
    try {
      await Promise.race([
        this.#connection.publish(`mn/v1/d/${deviceId}/down`, payload),
        new Promise<never>((_resolve, reject) => { timer = setTimeout(() => reject(timeout()), timeoutMs) }),
      ])
    } finally {
      clearTimeout(timer)
    }
  }

  /** Closes the connection and ends every `records()` iterator. Idempotent. */
  close (): Promise<void> {
    this.#closing ??= (async () => {
      for (const finish of [...this.#iterators]) finish()
      this.#handlers.clear()
      await this.#connection.close()
    })()
    return this.#closing
  }

  #onMessage (topic: string, payload: Uint8Array): void {
    let record: BridgeRecord
    try {
      record = toBridgeRecord(topic, payload)
    } catch (err) {
      this.emit('error', new MetanodeSdkError(`ignored an undecodable bridge record on ${topic}: ${(err as Error).message}`, { cause: err }))
      return
    }
    for (const handler of [...this.#handlers]) {
      try {
        const result = handler(record)
        if (result && typeof (result as Promise<void>).then === 'function') {
          (result as Promise<void>).then(undefined, err => this.emit('error', err instanceof Error ? err : new MetanodeSdkError(String(err))))
        }
      } catch (err) {
        this.emit('error', err instanceof Error ? err : new MetanodeSdkError(String(err)))
      }
    }
  }
}

/** Creates a service client and connects it. */
export async function connectService (options: ServiceClientOptions): Promise<ServiceClient> {
  return new ServiceClient(options).connect()
}

/** Decodes one bridge record payload (§6) into the typed form, with `verify`. Throws on anything else. */
export function toBridgeRecord (topic: string, payload: Uint8Array): BridgeRecord {
  const record = decodeBridgeRecord(payload)
  const raw = record.raw
  return Object.freeze({
    topic,
    type: record.type,
    typeName: typeName(record.type),
    src: record.src,
    receivedAt: record.receivedAt,
    body: record.body,
    hubId: record.hubId,
    signed: record.signed,
    raw,
    verify: (publicKey: Uint8Array | string) => verifyEnvelope(raw, publicKey, 'up'),
  })
}
