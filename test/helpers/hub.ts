/**
 * Test helpers: a real hub on ephemeral ports over a temp data dir, enrolled principals,
 * and real mqtt.js clients. Everything started here is closed in `t.after`.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { generateKeyPairSync, sign } from 'node:crypto'
import type { TestContext } from 'node:test'
import mqtt, { type MqttClient, type IClientOptions } from 'mqtt'
import { startHub, type Hub, type HubOptions } from '../../src/hub.js'
import { buildConnectPassword, principalIdFromPublicKey, type Signer } from '../../src/protocol/index.js'
import { SqliteSql } from '../../src/store/index.js'

type After = Pick<TestContext, 'after'>

export function tempDir (t: After, prefix = 'metanode-test-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix))
  t.after(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}

export async function startTestHub (t: After, overrides: HubOptions = {}): Promise<Hub> {
  const hub = await startHub({
    host: '127.0.0.1',
    mqttPort: 0,
    httpPort: 0,
    dataDir: overrides.dataDir ?? tempDir(t),
    logLevel: 'silent',
    ...overrides,
  })
  t.after(async () => {
    // Every hub a test ran must end with an intact audit chain (tests that close the
    // database under the hub on purpose are the exception).
    const { sql } = hub.store
    const closedUnderHub = sql instanceof SqliteSql && !sql.connection.open
    const chain = closedUnderHub ? { ok: true as const } : await hub.audit.verify()
    await hub.close()
    if (!chain.ok) throw new Error(`audit chain broken at seq ${chain.brokenAt}: ${chain.reason}`)
  })
  return hub
}

export interface TestPrincipal {
  id: string
  role: 'device' | 'service' | 'node'
  publicKey: Uint8Array
  secretKey: Uint8Array
  sign: Signer
}

export function makeKeyPair (role: TestPrincipal['role'] = 'device'): TestPrincipal {
  const { privateKey } = generateKeyPairSync('ed25519')
  const jwk = privateKey.export({ format: 'jwk' })
  const publicKey = new Uint8Array(Buffer.from(jwk.x as string, 'base64url'))
  return {
    id: principalIdFromPublicKey(publicKey),
    role,
    publicKey,
    secretKey: new Uint8Array(Buffer.from(jwk.d as string, 'base64url')),
    sign: (message: Uint8Array) => new Uint8Array(sign(null, message, privateKey)),
  }
}

export async function enrollPrincipal (hub: Pick<Hub, 'httpPort' | 'adminToken'>, role: TestPrincipal['role'] = 'device'): Promise<TestPrincipal> {
  const principal = makeKeyPair(role)
  const res = await fetch(`http://127.0.0.1:${hub.httpPort}/v1/devices`, {
    method: 'POST',
    headers: { authorization: `Bearer ${hub.adminToken}`, 'content-type': 'application/json' },
    body: JSON.stringify({ publicKey: Buffer.from(principal.publicKey).toString('hex'), role }),
  })
  if (res.status !== 201) throw new Error(`enrolment failed: ${res.status} ${await res.text()}`)
  return principal
}

export function mqttUrl (hub: Pick<Hub, 'mqttPort'>): string {
  return `mqtt://127.0.0.1:${hub.mqttPort}`
}

/** Options for mqtt.js that authenticate as the principal with a fresh password. */
export function principalOptions (principal: TestPrincipal, extra: IClientOptions = {}): IClientOptions {
  return {
    clientId: principal.id,
    username: principal.id,
    password: Buffer.from(buildConnectPassword(principal.id, principal.sign)),
    reconnectPeriod: 0,
    connectTimeout: 5_000,
    ...extra,
  }
}

/** Connects and resolves once CONNACK 0 arrives; the client is closed in t.after. */
export async function connectClient (t: After, url: string, options: IClientOptions): Promise<MqttClient> {
  const client = mqtt.connect(url, { reconnectPeriod: 0, connectTimeout: 5_000, ...options })
  t.after(() => client.endAsync(true))
  await new Promise<void>((resolve, reject) => {
    client.once('connect', () => resolve())
    client.once('error', reject)
  })
  return client
}

/** Connects and resolves with the CONNACK return code (0 when accepted). */
export async function connackCode (t: After, url: string, options: IClientOptions): Promise<number> {
  const client = mqtt.connect(url, { reconnectPeriod: 0, connectTimeout: 5_000, ...options })
  t.after(() => client.endAsync(true))
  return new Promise<number>((resolve, reject) => {
    client.once('connect', () => resolve(0))
    client.once('error', (err: Error & { code?: number }) => {
      if (typeof err.code === 'number') resolve(err.code)
      else reject(err)
    })
  })
}

/** Collects messages arriving on a client, to await a count of them. */
export function collect (client: MqttClient): { messages: Array<{ topic: string, payload: Buffer }>, waitFor (count: number, timeoutMs?: number): Promise<Array<{ topic: string, payload: Buffer }>> } {
  const messages: Array<{ topic: string, payload: Buffer }> = []
  const waiters: Array<() => void> = []
  client.on('message', (topic, payload) => {
    messages.push({ topic, payload })
    for (const wake of waiters.splice(0)) wake()
  })
  return {
    messages,
    async waitFor (count, timeoutMs = 5_000) {
      const deadline = Date.now() + timeoutMs
      while (messages.length < count) {
        const left = deadline - Date.now()
        if (left <= 0) throw new Error(`expected ${count} messages, got ${messages.length}`)
        await new Promise<void>(resolve => {
          const timer = setTimeout(resolve, left)
          waiters.push(() => { clearTimeout(timer); resolve() })
        })
      }
      return messages
    },
  }
}
