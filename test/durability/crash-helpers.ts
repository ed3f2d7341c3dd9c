/**
 * What the crash tests share: a seeded PRNG, a device that keeps a window of QoS 1
 * envelopes in flight and records which ones the broker acknowledged, a service's log of
 * bridge records deduplicated by the body's sequence number, the check of retained
 * messages, and SQLite's integrity check on what a killed process left on disk.
 */
import assert from 'node:assert/strict'
import type { TestContext } from 'node:test'
import { copyFileSync, existsSync, mkdtempSync } from 'node:fs'
import { basename, join } from 'node:path'
import BetterSqlite3 from 'better-sqlite3'
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt'
import { decodeBridgeRecord, encodeEnvelope } from '../../src/protocol/index.js'
import type { TestPrincipal } from '../helpers/hub.js'

type After = Pick<TestContext, 'after'>

/**
 * mulberry32: a small seeded PRNG, so that a failing seed can be run again as it was. The
 * seed is scrambled first: neighbouring small seeds would otherwise start alike.
 */
export function mulberry32 (seed: number): () => number {
  let a = Math.imul(seed ^ 0x5bd1e995, 0x9e3779b1) >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let x = a
    x = Math.imul(x ^ (x >>> 15), x | 1)
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61)
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296
  }
}

/** An integer from min to max, both included. */
export function between (random: () => number, min: number, max: number): number {
  return min + Math.floor(random() * (max - min + 1))
}

/**
 * Connects and resolves once CONNACK 0 arrives; the client is closed in t.after. Unlike
 * connectClient (test/helpers/hub.ts), the message handler is attached before the CONNECT:
 * a persistent session's queue can arrive in the same read as the CONNACK, and mqtt.js
 * acknowledges what it emitted whether or not anyone listened. Errors after the CONNACK
 * are ignored: these clients lose their broker on purpose.
 */
export async function connectMqtt (t: After, url: string, options: IClientOptions, onMessage?: (topic: string, payload: Buffer) => void): Promise<MqttClient> {
  const client = mqtt.connect(url, { reconnectPeriod: 0, connectTimeout: 5_000, ...options })
  t.after(() => client.endAsync(true))
  if (onMessage) client.on('message', onMessage)
  await new Promise<void>((resolve, reject) => {
    client.once('connect', () => resolve())
    client.once('error', err => reject(new Error(`${options.clientId ?? 'an anonymous client'} could not connect to ${url}: ${err.message}`, { cause: err })))
  })
  client.on('error', () => {})
  return client
}

/**
 * A device publishing QoS 1 envelopes with bodies `{ n }`, n taken from a shared counter,
 * with up to `window` of them in flight, until stopped, until `limit` were sent, or until
 * its connection closes. A number enters `acked` only when its PUBACK arrived.
 */
export class Traffic {
  sent = 0
  ackedHere = 0
  readonly #client: MqttClient
  readonly #topic: string
  readonly #src: string
  readonly #sequence: { next: number }
  readonly #window: number
  readonly #limit: number
  readonly #acked: Set<number>
  #inFlight = 0
  #running = true
  #idle: (() => void) | null = null

  constructor (client: MqttClient, device: TestPrincipal, options: { sequence: { next: number }, window: number, acked: Set<number>, limit?: number }) {
    this.#client = client
    this.#topic = `mn/v1/d/${device.id}/up`
    this.#src = device.id
    this.#sequence = options.sequence
    this.#window = options.window
    this.#limit = options.limit ?? Infinity
    this.#acked = options.acked
    client.on('close', () => {
      this.#running = false
      this.#check()
    })
    this.#pump()
  }

  /**
   * Resolves once every publish in flight has settled. With `force` (the broker is gone) the
   * client is ended at once, which fails what never got its PUBACK; otherwise the PUBACKs
   * are awaited and the client is then closed. `whenSent`: first send up to the limit.
   */
  async finish (force: boolean, options: { whenSent?: boolean } = {}): Promise<void> {
    if (!options.whenSent) this.#running = false
    if (force) this.#client.end(true)
    const idle = new Promise<void>(resolve => { this.#idle = resolve })
    this.#check()
    let timer: NodeJS.Timeout | undefined
    const bound = new Promise<never>((_resolve, reject) => {
      timer = setTimeout(() => reject(new Error(`the device's traffic did not settle within 20 s (${this.#inFlight} publishes in flight)`)), 20_000)
    })
    try {
      await Promise.race([idle, bound])
    } finally {
      clearTimeout(timer)
    }
    if (!force) await this.#client.endAsync()
  }

  #check (): void {
    if (this.#inFlight > 0 || !this.#idle) return
    if (this.#running && this.#client.connected && this.sent < this.#limit) return
    this.#idle()
    this.#idle = null
  }

  #pump (): void {
    while (this.#running && this.#client.connected && this.#inFlight < this.#window && this.sent < this.#limit) {
      const n = this.#sequence.next++
      const payload = Buffer.from(encodeEnvelope({ type: 1, src: this.#src, body: { n } }))
      this.#inFlight++
      this.sent++
      this.#client.publish(this.#topic, payload, { qos: 1 }, err => {
        if (!err) {
          this.#acked.add(n)
          this.ackedHere++
        }
        this.#inFlight--
        this.#check()
        // A callback can run inside publish(): pump from a fresh stack.
        setImmediate(() => this.#pump())
      })
    }
  }
}

/** The bridge records a service received, counted by the sequence number in their body. */
export class RecordLog {
  readonly counts = new Map<number, number>()
  /** Deliveries, duplicates included. */
  total = 0
  readonly errors: string[] = []
  #wake: (() => void) | null = null

  readonly onMessage = (topic: string, payload: Buffer): void => {
    try {
      const n = (decodeBridgeRecord(payload).body as { n?: unknown }).n
      if (typeof n !== 'number') throw new Error('no sequence number in the body')
      this.counts.set(n, (this.counts.get(n) ?? 0) + 1)
      this.total++
    } catch (err) {
      this.errors.push(`${topic}: ${(err as Error).message}`)
    }
    this.#wake?.()
  }

  get duplicates (): number {
    return this.total - this.counts.size
  }

  /**
   * The final account of a crash run: every record decodes, none was never sent, and none
   * the broker acknowledged is missing; the totals go to the test's output.
   */
  assertNothingLost (t: { diagnostic (message: string): void }, seeds: number, sent: number, acked: ReadonlySet<number>): void {
    assert.deepEqual(this.errors, [], 'every record the service got decodes')
    assert.deepEqual([...this.counts.keys()].filter(n => n >= sent), [], 'no record the device never sent')
    const lost = this.missing(acked).length
    t.diagnostic(`totals: ${seeds} seeds, ${sent} sent, ${acked.size} acknowledged, ${this.counts.size} distinct received, ${this.duplicates} duplicates, ${lost} lost`)
    assert.equal(lost, 0)
  }

  missing (expected: Iterable<number>): number[] {
    const missing: number[] = []
    for (const n of expected) if (!this.counts.has(n)) missing.push(n)
    return missing.sort((a, b) => a - b)
  }

  /** Resolves once every expected number arrived; a liveness bound, not a timing assertion. */
  async waitForAll (expected: ReadonlySet<number>, timeoutMs: number, what: string): Promise<void> {
    const deadline = Date.now() + timeoutMs
    for (;;) {
      const missing = this.missing(expected)
      if (missing.length === 0) return
      const left = deadline - Date.now()
      if (left <= 0) {
        throw new Error(`${what}: ${missing.length} of ${expected.size} acknowledged messages never reached the persistent subscriber: ${ranges(missing)}`)
      }
      await new Promise<void>(resolve => {
        const timer = setTimeout(resolve, Math.min(left, 250))
        this.#wake = () => { clearTimeout(timer); resolve() }
      })
      this.#wake = null
    }
  }
}

/** "3-7, 12, 20-21": a list of numbers, shortened. */
export function ranges (numbers: number[]): string {
  const parts: string[] = []
  for (let i = 0; i < numbers.length; i++) {
    let j = i
    while (j + 1 < numbers.length && numbers[j + 1] === numbers[j] + 1) j++
    parts.push(i === j ? String(numbers[i]) : `${numbers[i]}-${numbers[j]}`)
    i = j
  }
  return parts.join(', ')
}

/**
 * Subscribes a fresh anonymous client to `filter` and resolves once the retained message of
 * every expected topic arrived with its payload; fails listing what is missing or wrong.
 */
export async function expectRetained (t: After, url: string, filter: string, expected: ReadonlyMap<string, string>, timeoutMs = 10_000): Promise<void> {
  const got = new Map<string, string>()
  let wake: (() => void) | null = null
  const client = await connectMqtt(t, url, {}, (topic, payload) => {
    got.set(topic, payload.toString())
    wake?.()
  })
  try {
    await client.subscribeAsync(filter, { qos: 1 })
    const deadline = Date.now() + timeoutMs
    const wrong = (): string[] => [...expected].filter(([topic, payload]) => got.get(topic) !== payload).map(([topic]) => topic)
    while (wrong().length > 0) {
      const left = deadline - Date.now()
      if (left <= 0) {
        throw new Error(`retained messages missing or changed: ${wrong().map(topic => `${topic} (${got.has(topic) ? JSON.stringify(got.get(topic)) : 'missing'})`).join(', ')}`)
      }
      await new Promise<void>(resolve => {
        const timer = setTimeout(resolve, Math.min(left, 250))
        wake = () => { clearTimeout(timer); resolve() }
      })
      wake = null
    }
  } finally {
    await client.endAsync(true)
  }
}

/**
 * `PRAGMA integrity_check` of a SQLite file, or of a copy of it: a killed process leaves a
 * WAL behind, and opening the file itself would recover and checkpoint it, changing what
 * the next start of the hub finds. The copy (the file and its -wal or -journal) is opened
 * as SQLite would open it after the crash.
 */
export function integrityCheck (file: string, options: { copyInto?: string } = {}): string {
  let path = file
  if (options.copyInto !== undefined) {
    const dir = mkdtempSync(join(options.copyInto, 'copy-'))
    path = join(dir, basename(file))
    copyFileSync(file, path)
    for (const suffix of ['-wal', '-journal']) {
      if (existsSync(file + suffix)) copyFileSync(file + suffix, path + suffix)
    }
  }
  const db = new BetterSqlite3(path, { fileMustExist: true })
  try {
    const rows = db.pragma('integrity_check') as Array<{ integrity_check: string }>
    return rows.map(row => row.integrity_check).join('; ')
  } finally {
    db.close()
  }
}
