/**
 * One principal's MQTT connection to the hub, kept up across drops: the CONNECT of
 * protocol-v1 §2 with a fresh signed password on every attempt, the principal's
 * subscriptions, and reconnects with exponential backoff and jitter.
 *
 * Why a new mqtt.js client per attempt, with mqtt.js's own reconnect off
 * (`reconnectPeriod: 0`): mqtt.js reconnects on a fixed period and reuses the options it
 * was given, so its password would be stale (the hub refuses a reused nonce and a
 * timestamp outside the skew window). A fresh client per attempt makes the fresh password
 * evident, drops no stale QoS 1 state into the new session (we resend from our own queue
 * with the same envelope ids instead), and lets us choose the delays.
 */
import mqtt from 'mqtt'
import type { IClientOptions, MqttClient } from 'mqtt'
import { buildConnectPassword } from '../src/protocol/index.js'
import { backoffDelayMs, type ReconnectOptions } from './backoff.js'
import { TypedEmitter } from './emitter.js'
import { ClosedError, ConnectError, MetanodeSdkError, TimeoutError } from './errors.js'
import { signerFor, type KeyPair } from './keys.js'
import { PASSWORD_PLACEHOLDER, patchSocketPassword } from './ws-password.js'

/**
 * How the binary password reaches mqtt.js. `buffer`: as a Buffer (Node, Bun, Deno).
 * `websocket`: as a placeholder swapped on the socket (browsers; see ws-password.ts).
 */
export type PasswordTransport = 'buffer' | 'websocket'

export interface ConnectionOptions {
  /** mqtt://, mqtts://, ws:// or wss:// (the hub serves WebSocket on its HTTP port at /mqtt). */
  url: string
  keyPair: KeyPair
  /** Topic filters subscribed at QoS 1 on every (re)connect, before the connection counts as up. */
  subscriptions: string[]
  reconnect: ReconnectOptions
  /** Wait for the CONNACK of one attempt, in ms. */
  connectTimeoutMs: number
  /** MQTT keepalive, in seconds. */
  keepaliveS: number
  /** Extra mqtt.js options (TLS `ca`, `rejectUnauthorized`, `wsOptions`, `createWebsocket`...). Auth fields are ours. */
  mqtt?: Partial<IClientOptions>
  /** Chosen from the environment when absent. */
  passwordTransport?: PasswordTransport
}

export interface ReconnectingInfo {
  /** 0 for the first retry after a drop or a failed first attempt. */
  attempt: number
  delayMs: number
  /** Why the last attempt or connection ended, when known. */
  error?: Error
}

export type ConnectionEvents = {
  /** Connected and subscribed. */
  online: []
  /** A connection that was online has ended. */
  offline: [error: Error | undefined]
  reconnecting: [info: ReconnectingInfo]
  message: [topic: string, payload: Uint8Array]
  /** Actionable problems: a refused CONNECT or SUBSCRIBE. Transport errors come with 'offline' and 'reconnecting'. */
  error: [error: Error]
  /** `close()` was called. */
  closed: []
}

// A graceful DISCONNECT should take a round trip; past this, the socket is destroyed.
const CLOSE_GRACE_MS = 1_000
const SUBACK_FAILURE = 0x80

export class Connection extends TypedEmitter<ConnectionEvents> {
  readonly #options: ConnectionOptions
  #client: MqttClient | null = null
  #online = false
  #started = false
  #closed = false
  #attempt = 0
  #lastError: Error | undefined
  #reconnectTimer: ReturnType<typeof setTimeout> | null = null

  constructor (options: ConnectionOptions) {
    super()
    this.#options = options
  }

  get online (): boolean {
    return this.#online
  }

  get closed (): boolean {
    return this.#closed
  }

  /** Why the last attempt or connection ended, when known. */
  get lastError (): Error | undefined {
    return this.#lastError
  }

  /** Starts connecting; idempotent. */
  start (): void {
    if (this.#started || this.#closed) return
    this.#started = true
    this.#open()
  }

  /** QoS 1 publish on the live connection; resolves on PUBACK, rejects if the connection ends first. */
  publish (topic: string, payload: Uint8Array): Promise<void> {
    const client = this.#client
    if (!client || !this.#online) return Promise.reject(new MetanodeSdkError('not connected'))
    return new Promise((resolve, reject) => {
      client.publish(topic, toMqttBytes(payload) as Buffer, { qos: 1 }, err => err ? reject(err) : resolve())
    })
  }

  /** Ends the connection and stops reconnecting; idempotent. */
  async close (): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    this.#online = false
    if (this.#reconnectTimer) clearTimeout(this.#reconnectTimer)
    this.#reconnectTimer = null
    const client = this.#client
    this.#client = null
    this.emit('closed')
    if (client) await endClient(client)
    this.removeAllListeners()
  }

  #open (): void {
    this.#reconnectTimer = null
    if (this.#closed) return
    const { keyPair, url } = this.#options
    const transport = this.#options.passwordTransport ?? defaultPasswordTransport()
    // Fresh ts and nonce on every attempt: the hub refuses a reused nonce (§2).
    const password = buildConnectPassword(keyPair.id, signerFor(keyPair))
    const extra = this.#options.mqtt ?? {}
    const options: IClientOptions = {
      ...extra,
      clientId: keyPair.id,
      username: keyPair.id,
      password: transport === 'buffer' ? toMqttBytes(password) as Buffer : PASSWORD_PLACEHOLDER,
      protocolVersion: 4,
      clean: true,
      reconnectPeriod: 0,
      resubscribe: false,
      connectTimeout: this.#options.connectTimeoutMs,
      keepalive: this.#options.keepaliveS,
    }
    if (transport === 'websocket') {
      const create = extra.createWebsocket
      options.createWebsocket = (wsUrl, protocols, opts) => {
        const socket = create ? create(wsUrl, protocols, opts) : new WebSocket(wsUrl, protocols)
        return patchSocketPassword(socket, password)
      }
    }

    let client: MqttClient
    try {
      client = mqtt.connect(url, options)
    } catch (err) {
      // mqtt.js refused the options (a malformed URL, say). connect() fails on this
      // ConnectError; start() keeps retrying at the backoff pace like any failed attempt.
      this.emit('error', new ConnectError(`cannot connect to ${url}: ${(err as Error).message}`, null, { cause: err }))
      this.#lastError = err as Error
      this.#scheduleReconnect()
      return
    }
    this.#client = client
    const current = (): boolean => this.#client === client

    client.on('connect', () => {
      if (!current()) return
      const subscriptions = Object.fromEntries(this.#options.subscriptions.map(topic => [topic, { qos: 1 as const }]))
      client.subscribe(subscriptions, (err, granted) => {
        if (!current()) return
        const refused = granted?.filter(grant => grant.qos === SUBACK_FAILURE).map(grant => grant.topic) ?? []
        if (err || refused.length > 0) {
          const error = new ConnectError(`the hub refused the subscription to ${refused.join(', ') || 'the topics'}${err ? `: ${err.message}` : ''}`, null, { cause: err })
          this.#lastError = error
          this.emit('error', error)
          client.end(true)
          return
        }
        this.#attempt = 0
        this.#lastError = undefined
        this.#online = true
        this.emit('online')
      })
    })
    client.on('message', (topic, payload) => {
      if (current()) this.emit('message', topic, payload)
    })
    client.on('error', err => {
      if (!current()) return
      // A numeric code before CONNACK 0 is the hub's refusal; transport errors have text codes.
      const code = (err as { code?: unknown }).code
      if (typeof code === 'number' && code > 0 && !client.connected) {
        const error = new ConnectError(describeRefusal(code, this.#options.keyPair.id), code, { cause: err })
        this.#lastError = error
        this.emit('error', error)
      } else {
        this.#lastError = err
      }
    })
    client.on('close', () => {
      if (!current()) return
      this.#client = null
      const wasOnline = this.#online
      this.#online = false
      // End the spent client: clears its timers and fails its unacknowledged publishes,
      // which our queue has already taken back.
      client.end(true)
      if (wasOnline) this.emit('offline', this.#lastError)
      this.#scheduleReconnect()
    })
  }

  #scheduleReconnect (): void {
    if (this.#closed) return
    const attempt = this.#attempt++
    const delayMs = backoffDelayMs(attempt, this.#options.reconnect)
    this.emit('reconnecting', { attempt, delayMs, error: this.#lastError })
    if (this.#closed) return
    this.#reconnectTimer = setTimeout(() => this.#open(), delayMs)
  }
}

/**
 * Resolves once the connection is online. Rejects with the ConnectError when the hub
 * refuses the CONNECT (retrying cannot help until an operator acts), with `onTimeout()`
 * after `timeoutMs`, and with ClosedError if the connection is closed first.
 */
export function waitOnline (connection: Connection, timeoutMs: number, onTimeout: () => Error): Promise<void> {
  if (connection.online) return Promise.resolve()
  if (connection.closed) return Promise.reject(new ClosedError())
  return new Promise((resolve, reject) => {
    const offs: Array<() => void> = []
    const settle = (err?: Error): void => {
      clearTimeout(timer)
      for (const off of offs) off()
      if (err) reject(err)
      else resolve()
    }
    const timer = setTimeout(() => settle(onTimeout()), timeoutMs)
    offs.push(connection.on('online', () => settle()))
    offs.push(connection.on('closed', () => settle(new ClosedError('the client was closed before it connected'))))
    offs.push(connection.on('error', err => {
      if (err instanceof ConnectError) settle(err)
    }))
  })
}

/** waitOnline for connect(): its timeout says what the last attempt ran into. */
export function waitConnected (connection: Connection, timeoutMs: number): Promise<void> {
  return waitOnline(connection, timeoutMs, () => connectTimeout(timeoutMs, connection.lastError))
}

/** The TimeoutError of connect(), saying what the last attempt ran into. */
export function connectTimeout (timeoutMs: number, lastError: Error | undefined): TimeoutError {
  return new TimeoutError(`not connected after ${timeoutMs} ms${lastError ? ` (last error: ${lastError.message})` : ''}`, timeoutMs)
}

function describeRefusal (returnCode: number, id: string): string {
  switch (returnCode) {
    case 4: return `the hub refused the CONNECT of ${id} (return code 4): the principal is not enrolled, the key does not match, or this machine's clock is off by more than the hub's skew window`
    case 5: return `the hub refused the CONNECT of ${id} (return code 5): not authorised (the principal is revoked)`
    default: return `the hub refused the CONNECT of ${id} (return code ${returnCode})`
  }
}

/**
 * mqtt.js's browser check (lib/is-browser.ts), so that we pick the password transport
 * matching the mqtt.js build the bundler chose: a browser window, a web worker, or React
 * Native all load the bundle whose Buffer is out of reach.
 */
function defaultPasswordTransport (): PasswordTransport {
  const g = globalThis as { window?: { document?: unknown }, navigator?: { product?: string }, self?: { constructor?: { name?: string } }, Buffer?: unknown }
  const browser = (typeof g.window !== 'undefined' && typeof g.window.document !== 'undefined') ||
    (typeof g.self === 'object' && g.self?.constructor?.name?.includes('WorkerGlobalScope') === true) ||
    g.navigator?.product === 'ReactNative'
  return browser || typeof g.Buffer !== 'function' ? 'websocket' : 'buffer'
}

/** A zero-copy Buffer view where Buffer exists (what mqtt.js's Node build expects), else the bytes. */
function toMqttBytes (bytes: Uint8Array): Uint8Array {
  const NodeBuffer = (globalThis as { Buffer?: { from (buffer: ArrayBufferLike, byteOffset: number, length: number): Uint8Array } }).Buffer
  return NodeBuffer ? NodeBuffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength) : bytes
}

async function endClient (client: MqttClient): Promise<void> {
  await new Promise<void>(resolve => {
    const timer = setTimeout(() => {
      client.end(true)
      resolve()
    }, CLOSE_GRACE_MS)
    // A connected client says DISCONNECT; one still connecting is simply dropped.
    client.end(!client.connected, {}, () => {
      clearTimeout(timer)
      resolve()
    })
  })
}
