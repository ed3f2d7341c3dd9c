/**
 * A hub whose PostgreSQL goes away keeps running: what needs the records is refused as
 * "unavailable, retry" (CONNACK 3 for a principal it has not cached, HTTP 503, /readyz
 * 503 so a load balancer steers away), what needs none goes on (a connected device's
 * telemetry), and once the database is back it serves again without a restart.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { encodeEnvelope, parsePayload } from '../../src/protocol/index.js'
import { collect, connackCode, connectClient, enrollPrincipal, mqttUrl, principalOptions, startTestHub } from '../helpers/hub.js'
import { postgresEngine, testPostgres } from '../helpers/sql-engines.js'

async function eventually (what: string, check: () => Promise<boolean>): Promise<void> {
  // A liveness bound: the pool opens new connections once the server answers again.
  const deadline = Date.now() + 20_000
  while (!await check()) {
    if (Date.now() > deadline) throw new Error(`${what}: not within 20 s`)
    await new Promise(resolve => setTimeout(resolve, 200))
  }
}

test('a hub outlives its PostgreSQL, refuses what needs the records meanwhile, and serves again when it is back', { skip: postgresEngine.skip, timeout: 90_000 }, async t => {
  const server = await testPostgres()
  const hub = await startTestHub(t, { databaseUrl: await server.createDatabase() })
  const base = `http://127.0.0.1:${hub.httpPort}`
  const admin = { authorization: `Bearer ${hub.adminToken}` }
  const connected = await enrollPrincipal(hub)
  const stranger = await enrollPrincipal(hub)
  const client = await connectClient(t, mqttUrl(hub), principalOptions(connected))
  const acks = collect(client)
  await client.subscribeAsync(`mn/v1/d/${connected.id}/down`, { qos: 1 })

  await server.halt()
  const listStatus = async () => (await fetch(`${base}/v1/devices`, { headers: admin })).status
  assert.equal(await listStatus(), 503, 'a request that reads the records: retry later')
  assert.equal((await fetch(`${base}/readyz`)).status, 503, 'not ready: a load balancer sends work elsewhere')
  assert.equal((await fetch(`${base}/healthz`)).status, 200, 'the process itself is up')
  assert.equal(await connackCode(t, mqttUrl(hub), principalOptions(stranger)), 3, 'CONNACK 3: server unavailable')
  await client.publishAsync(`mn/v1/d/${connected.id}/up`, Buffer.from(encodeEnvelope({ type: 1, src: connected.id, body: { temp: 21 }, ack: true })), { qos: 1 })
  const [down] = await acks.waitFor(1)
  const parsed = parsePayload(down.payload, { payloadBytesMax: 1 << 20, direction: 'down' })
  assert.ok(parsed.ok)
  assert.equal((parsed.items[0].envelope?.body as { ok?: boolean }).ok, true, 'telemetry needs no record and is accepted')

  await server.resume()
  await eventually('requests served again', async () => await listStatus() === 200)
  assert.equal((await fetch(`${base}/readyz`)).status, 200)
  assert.equal(await connackCode(t, mqttUrl(hub), principalOptions(stranger)), 0)
})
