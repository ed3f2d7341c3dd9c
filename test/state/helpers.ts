/**
 * Helpers for the state tests: a state service over a real SQLite store with a recording
 * publishDown, HTTP calls to a test hub, and a device's down messages decoded in order.
 */
import { join } from 'node:path'
import type { TestContext } from 'node:test'
import type { MqttClient } from 'mqtt'
import { pino } from 'pino'
import type { Hub } from '../../src/hub.js'
import { openSqlite, PrincipalStore, ProvisioningStore, type SqliteStore } from '../../src/store/index.js'
import { createStateService, type StateService, type StateServiceOptions } from '../../src/state/service.js'
import { parsePayload, type Envelope, type ParsedItem } from '../../src/protocol/index.js'
import { collect, makeKeyPair, tempDir, type TestPrincipal } from '../helpers/hub.js'

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
  store: SqliteStore
  state: StateService
  published: Published[]
  enrol (role?: TestPrincipal['role']): TestPrincipal
  /** The clock the service reads; tests move it. */
  clock: { nowMs: number }
}

/** A state service over a real store in a temp dir; publishDown records what it was given. */
export function serviceFixture (t: After, options: Partial<StateServiceOptions> = {}): ServiceFixture {
  // Assembled from the SQLite store's synchronous parts, so that the fixture and enrol()
  // stay synchronous like the state tests that call them.
  const sql = openSqlite(join(tempDir(t), 'hub.db'))
  const principals = new PrincipalStore(sql)
  const store: SqliteStore = { sql, db: sql.connection, principals, provisioning: new ProvisioningStore(sql, principals), close: () => sql.close() }
  const published: Published[] = []
  const clock = { nowMs: 1_767_225_600_000 }
  const state = createStateService({
    db: store.db,
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
  t.after(async () => {
    await state.close()
    await store.close()
  })
  return {
    store,
    state,
    published,
    clock,
    enrol (role = 'device') {
      const principal = makeKeyPair(role)
      sql.connection.prepare('INSERT INTO principals (id, public_key, role, name, created_ms) VALUES (?, ?, ?, NULL, ?)')
        .run(principal.id, Buffer.from(principal.publicKey), role, Date.now())
      return principal
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
