/**
 * Helpers for the state tests: a state service over a real database (either engine) with a
 * recording publishDown, HTTP calls to a test hub, and a device's down messages decoded in
 * order.
 */
import { spawn } from 'node:child_process'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import type { TestContext } from 'node:test'
import type { MqttClient } from 'mqtt'
import { pino } from 'pino'
import type { Hub } from '../../src/hub.js'
import type { SqlDatabase } from '../../src/store/index.js'
import { createStateService, type StateService, type StateServiceOptions } from '../../src/state/service.js'
import { parsePayload, type Envelope, type ParsedItem } from '../../src/protocol/index.js'
import { collect, makeKeyPair, type TestPrincipal } from '../helpers/hub.js'
import { sharedDatabase as sharedOfEngine, sqliteEngine, type SqlEngine } from '../helpers/sql-engines.js'

type After = Pick<TestContext, 'after'>

export const HUB_ID = 'c945cbf2a5602002141e2fb9d17054d6'
export const LIMITS = Object.freeze({ documentBytesMax: 8 * 1024, depthMax: 8 })

export interface Published {
  deviceId: string
  envelope: Uint8Array
  item: ParsedItem
  body: { delta: Record<string, unknown>, version: number }
}

export interface ServiceFixture {
  db: SqlDatabase
  state: StateService
  published: Published[]
  enrol (role?: TestPrincipal['role']): Promise<TestPrincipal>
  /** The clock the service reads; tests move it. */
  clock: { nowMs: number }
}

/**
 * A state service over a fresh database of the engine (or over `options.db`); publishDown
 * records what it was given.
 */
export async function serviceFixture (t: After, engine: SqlEngine = sqliteEngine, options: Partial<StateServiceOptions> = {}): Promise<ServiceFixture> {
  const db = options.db ?? await engine.open(t)
  const published: Published[] = []
  const clock = { nowMs: 1_767_225_600_000 }
  const state = createStateService({
    db,
    log: pino({ level: 'silent' }),
    limits: LIMITS,
    hubId: HUB_ID,
    nowMs: () => clock.nowMs,
    publishDown: async (deviceId, envelope) => {
      const item = decodeDown(envelope)
      published.push({ deviceId, envelope, item, body: item.envelope!.body as Published['body'] })
    },
    ...options,
  })
  t.after(() => state.close())
  return {
    db,
    state,
    published,
    clock,
    enrol: role => enrol(db, role),
  }
}

/**
 * Enrols a new principal by writing its row: the state service only reads principals, so
 * its tests need no more of the principals' repository than the table.
 */
export async function enrol (db: SqlDatabase, role: TestPrincipal['role'] = 'device'): Promise<TestPrincipal> {
  const principal = makeKeyPair(role)
  await db.run('INSERT INTO principals (id, public_key, role, created_ms) VALUES (?, ?, ?, ?)', [principal.id, Buffer.from(principal.publicKey), role, Date.now()])
  return principal
}

/**
 * One fresh database of the engine: a connection to it, and what names it for another
 * process (its URL, or the SQLite file's path).
 */
export async function sharedDatabase (t: After, engine: SqlEngine): Promise<{ db: SqlDatabase, target: string, open (): Promise<SqlDatabase> }> {
  const { target, connect } = await sharedOfEngine(engine, t)
  // The first connection applies the schema, before anyone else opens the database.
  return { db: await connect(), target, open: connect }
}

/** A change the state process is asked to make. */
export interface RaceChange {
  deviceId: string
  section: 'desired' | 'reported'
  patch: Record<string, unknown>
  expectedVersion?: number
}

/** How a change went: its version, the version it conflicted at, or another error. */
export type RaceOutcome = { ok: true, version: number } | { ok: false, conflictAt?: number, error?: string }

export interface StateProcess {
  /** Has the process make all the changes at once; resolves with their outcomes in order. */
  make (changes: RaceChange[]): Promise<RaceOutcome[]>
}

const STATE_PROCESS = fileURLToPath(new URL('./state-process.ts', import.meta.url))

/** Another process with a state service of its own on the database `target` names (state-process.ts). */
export async function startStateProcess (t: After, target: string): Promise<StateProcess> {
  const child = spawn(process.execPath, ['--import', 'tsx', STATE_PROCESS, target], {
    cwd: fileURLToPath(new URL('../..', import.meta.url)),
    stdio: ['pipe', 'pipe', 'inherit'],
  })
  const exited = new Promise<void>(resolve => child.once('exit', () => resolve()))
  t.after(async () => {
    // Its stdin ending is its cue to close the database and exit.
    child.stdin.end()
    await exited
  })
  const lines = createInterface({ input: child.stdout })[Symbol.asyncIterator]()
  const next = async (): Promise<string> => {
    const line = await lines.next()
    if (line.done === true) throw new Error('the state process exited')
    return line.value
  }
  const greeting = await next()
  if (greeting !== 'ready') throw new Error(`the state process said ${JSON.stringify(greeting)}, not ready`)
  return {
    async make (changes) {
      child.stdin.write(JSON.stringify(changes) + '\n')
      return JSON.parse(await next()) as RaceOutcome[]
    },
  }
}

export function decodeDown (bytes: Uint8Array): ParsedItem {
  const parsed = parsePayload(bytes, { payloadBytesMax: 1 << 20, direction: 'down' })
  if (!parsed.ok || parsed.items.length !== 1 || !parsed.items[0].envelope || parsed.items[0].reason) {
    throw new Error('undecodable down message')
  }
  return parsed.items[0]
}

export interface Answer {
  status: number
  headers: Headers
  body: any
}

export interface CallOptions {
  /** null sends no Authorization header; a string sends that bearer token. */
  token?: string | null
  /** An object is sent as JSON; a string as it is. */
  body?: unknown
  headers?: Record<string, string>
}

/** One HTTP request to the hub, with its admin token unless told otherwise. */
export async function call (hub: Hub, method: string, path: string, options: CallOptions = {}): Promise<Answer> {
  const { token = hub.adminToken, body, headers = {} } = options
  const sent: Record<string, string> = { ...headers }
  if (token !== null) sent.authorization ??= `Bearer ${token}`
  const init: RequestInit = { method, headers: sent }
  if (body !== undefined) {
    init.body = typeof body === 'string' ? body : JSON.stringify(body)
    sent['content-type'] ??= 'application/json'
  }
  const response = await fetch(`http://127.0.0.1:${hub.httpPort}${path}`, init)
  const text = await response.text()
  return { status: response.status, headers: response.headers, body: text === '' ? undefined : JSON.parse(text) }
}

export function statePath (id: string): string {
  return `/v1/devices/${id}/state`
}

/** Every envelope arriving on a client, decoded, in order; `next` waits for the n-th. */
export function downStream (client: MqttClient): { envelopes: Envelope[], items: ParsedItem[], next (): Promise<Envelope>, at (index: number): Promise<Envelope> } {
  const messages = collect(client)
  const items: ParsedItem[] = []
  const envelopes: Envelope[] = []
  let read = 0
  const at = async (index: number): Promise<Envelope> => {
    const all = await messages.waitFor(index + 1)
    while (items.length < all.length) {
      const item = decodeDown(all[items.length].payload)
      items.push(item)
      envelopes.push(item.envelope!)
    }
    return envelopes[index]
  }
  return {
    envelopes,
    items,
    at,
    next: () => at(read++),
  }
}
