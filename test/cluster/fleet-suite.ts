/**
 * What a fleet of three hub processes sharing one Redis must show, whatever keeps its
 * records: it behaves as one hub. Messages cross processes, a persistent session's queue
 * follows the client to another process, ids and nonces replayed to another process are
 * refused, a revocation closes the session wherever it lives, a state document written on
 * one process is read on another, a policy limit counts for the fleet, and a nullifier
 * claimed on one process is refused on the others. cluster.test.ts runs it on one host
 * (one shared SQLite file), cluster-hosts.test.ts as on three hosts (PostgreSQL).
 */
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import * as snarkjs from 'snarkjs'
import type { MqttClient } from 'mqtt'
import { SparseMerkleTree, claimCircuitInput, identityLeaf, nullifierHash } from '../../circuits/claim-inputs.js'
import { circuitArtifact } from '../../src/zklock/artifacts.js'
import { buildConnectPassword, decodeBridgeRecord, encodeEnvelope, parsePayload, signHttpRequest } from '../../src/protocol/index.js'
import { collect, connackCode, connectClient, enrollPrincipal, mqttUrl, principalOptions, type TestPrincipal } from '../helpers/hub.js'
import { redisAvailable, startRedis, type TestRedis } from '../helpers/redis.js'
import type { HubProcess } from '../helpers/hub-process.js'

/** Registers cleanups that run when the file's tests are done. */
export interface Suite {
  after (fn: () => unknown): void
}

/**
 * Defines the fleet tests of one test file. `startFleet` starts the three processes on the
 * given Redis; it may return a reason to skip instead (a missing server).
 */
export function fleetSuite (startFleet: (suite: Suite, redis: TestRedis) => Promise<HubProcess[]>, skipReason: string | false = false): void {
  const skip = skipReason || (!redisAvailable() && !process.env.MN_REQUIRE_REDIS
    ? 'redis-server is not installed (Debian: apt-get install redis-server); the cluster tests need a real Redis'
    : false)

  // One fleet for the whole file: starting three hubs costs seconds.
  const fleet: HubProcess[] = []
  const cleanups: Array<() => unknown> = []
  const suite: Suite = { after: fn => { cleanups.push(fn) } }
  after(async () => {
    for (const cleanup of cleanups.reverse()) await cleanup()
  })

  before(async () => {
    if (skip) return
    fleet.push(...await startFleet(suite, await startRedis(suite)))
  })

  after(() => (globalThis as { curve_bn128?: { terminate(): Promise<void> } }).curve_bn128?.terminate())

  defineTests(fleet, skip)
}

function http (hub: HubProcess): string {
  return `http://127.0.0.1:${hub.httpPort}`
}

function admin (hub: HubProcess): Record<string, string> {
  return { authorization: `Bearer ${hub.adminToken}`, 'content-type': 'application/json' }
}

function upTopic (p: TestPrincipal): string {
  return `mn/v1/d/${p.id}/up`
}

async function ackBodies (messages: Array<{ payload: Buffer }>): Promise<Array<Record<string, unknown>>> {
  return messages.map(m => {
    const parsed = parsePayload(m.payload, { payloadBytesMax: 1 << 20, direction: 'down' })
    if (!parsed.ok || !parsed.items[0].envelope) throw new Error('undecodable down message')
    return parsed.items[0].envelope.body as Record<string, unknown>
  })
}

async function connectDevice (t: Parameters<typeof connectClient>[0], hub: HubProcess, device: TestPrincipal): Promise<{ client: MqttClient, acks: ReturnType<typeof collect> }> {
  const client = await connectClient(t, mqttUrl(hub), principalOptions(device))
  const acks = collect(client)
  await client.subscribeAsync(`mn/v1/d/${device.id}/down`, { qos: 1 })
  return { client, acks }
}

function defineTests (fleet: HubProcess[], skip: string | false): void {
  test('a device on one process reaches a service on another', { skip }, async t => {
    const [a, b] = fleet
    const device = await enrollPrincipal(a)
    const service = await enrollPrincipal(a, 'service')
    const serviceClient = await connectClient(t, mqttUrl(b), principalOptions(service))
    const records = collect(serviceClient)
    await serviceClient.subscribeAsync(`mn/v1/bridge/+/${device.id}`, { qos: 1 })
    const { client, acks } = await connectDevice(t, a, device)
    await client.publishAsync(upTopic(device), Buffer.from(encodeEnvelope({ type: 1, src: device.id, body: { temp: 20.5 }, ack: true })), { qos: 1 })
    const [ack] = await ackBodies(await acks.waitFor(1))
    assert.equal(ack.ok, true)
    const [record] = await records.waitFor(1)
    assert.equal(record.topic, `mn/v1/bridge/status_update/${device.id}`)
    assert.deepEqual(decodeBridgeRecord(record.payload).body, { temp: 20.5 })
  })

  test('a message sent through one process reaches the device on another, which the API reports online and, waited for, delivered', { skip }, async t => {
    const [a, , c] = fleet
    const device = await enrollPrincipal(a)
    const send = async () => {
      const res = await fetch(`${http(a)}/v1/devices/${device.id}/messages`, { method: 'POST', headers: admin(a), body: JSON.stringify({ type: 'ConfigurationUpdate', body: { rate: 5 } }) })
      assert.equal(res.status, 202)
      return (await res.json() as { online: boolean }).online
    }
    assert.equal(await send(), false, 'not connected anywhere')
    const { client, acks } = await connectDevice(t, c, device)
    // C writes the presence key as the session becomes ready, a moment after the CONNACK.
    let online = await send()
    for (let i = 0; i < 50 && !online; i++) {
      await new Promise(resolve => setTimeout(resolve, 100))
      online = await send()
    }
    assert.equal(online, true, 'connected to another process')
    const [down] = await ackBodies(await acks.waitFor(1))
    assert.deepEqual(down, { rate: 5 })
    // The device's PUBACK reaches C; the wait on A hears of it through the fleet.
    const waited = await fetch(`${http(a)}/v1/devices/${device.id}/messages`, { method: 'POST', headers: admin(a), body: JSON.stringify({ type: 'ConfigurationUpdate', body: { rate: 6 }, wait: true, timeoutMs: 10_000 }) })
    assert.equal(waited.status, 202)
    assert.deepEqual(await waited.json().then(r => [(r as { online: boolean }).online, (r as { delivered: boolean }).delivered]), [true, true], 'delivered, acknowledged on another process')
    await client.endAsync()
    // The key goes once C has seen the disconnect.
    for (let i = 0; i < 50 && await send(); i++) await new Promise(resolve => setTimeout(resolve, 100))
    assert.equal(await send(), false, 'gone again')
  })

  test('a persistent service gets the QoS 1 messages queued while it was offline from another process', { skip }, async t => {
    const [a, b, c] = fleet
    const device = await enrollPrincipal(a)
    const service = await enrollPrincipal(a, 'service')
    const persistent = { clean: false }
    const first = await connectClient(t, mqttUrl(b), principalOptions(service, persistent))
    await first.subscribeAsync(`mn/v1/bridge/+/${device.id}`, { qos: 1 })
    await first.endAsync()
    const { client, acks } = await connectDevice(t, a, device)
    for (let i = 0; i < 5; i++) {
      await client.publishAsync(upTopic(device), Buffer.from(encodeEnvelope({ type: 1, src: device.id, body: { n: i }, ack: true })), { qos: 1 })
    }
    assert.ok((await ackBodies(await acks.waitFor(5))).every(a => a.ok === true))
    const again = await connectClient(t, mqttUrl(c), principalOptions(service, { ...persistent, autoUseTopicAlias: false }))
    const records = collect(again)
    const got = await records.waitFor(5)
    assert.deepEqual(got.map(r => (decodeBridgeRecord(r.payload).body as { n: number }).n), [0, 1, 2, 3, 4])
  })

  test('an envelope id, a CONNECT nonce and a request nonce replayed to another process are refused', { skip }, async t => {
    const [a, b, c] = fleet
    const device = await enrollPrincipal(a)
    const envelope = Buffer.from(encodeEnvelope({ type: 1, src: device.id, body: { once: true }, ack: true }))
    const onA = await connectDevice(t, a, device)
    await onA.client.publishAsync(upTopic(device), envelope, { qos: 1 })
    assert.equal((await ackBodies(await onA.acks.waitFor(1)))[0].ok, true)
    await onA.client.endAsync()
    const onB = await connectDevice(t, b, device)
    await onB.client.publishAsync(upTopic(device), envelope, { qos: 1 })
    const [replayed] = await ackBodies(await onB.acks.waitFor(1))
    assert.deepEqual([replayed.ok, replayed.code, replayed.reason], [false, 6, 'replay'])
    await onB.client.endAsync()

    const password = Buffer.from(buildConnectPassword(device.id, device.sign))
    const fixed = { ...principalOptions(device), password }
    const accepted = await connectClient(t, mqttUrl(a), fixed)
    await accepted.endAsync()
    assert.equal(await connackCode(t, mqttUrl(c), fixed), 4, 'the same password on another process')

    const headers = signHttpRequest(device.id, device.sign, { method: 'GET', target: '/v1/me' })
    assert.equal((await fetch(`${http(a)}/v1/me`, { headers })).status, 200)
    assert.equal((await fetch(`${http(b)}/v1/me`, { headers })).status, 401, 'the same signed request on another process')
  })

  test('a revocation on one process closes the session on another and refuses it on a third', { skip }, async t => {
    const [a, b, c] = fleet
    const device = await enrollPrincipal(a)
    const { client } = await connectDevice(t, b, device)
    const closed = new Promise<void>(resolve => client.once('close', () => resolve()))
    assert.equal((await fetch(`${http(a)}/v1/devices/${device.id}`, { method: 'DELETE', headers: { authorization: admin(a).authorization } })).status, 200)
    await closed
    assert.equal(await connackCode(t, mqttUrl(c), principalOptions(device)), 5)
  })

  test('a policy rate limit counts requests to every process', { skip }, async t => {
    const [a, b, c] = fleet
    const rule = { id: 'fleet-roots-limit', match: { path: '/v1/zk/roots' }, action: { type: 'rate_limit', max: 4, windowMs: 60_000, key: 'address' } }
    assert.equal((await fetch(`${http(a)}/v1/policies`, { method: 'POST', headers: admin(a), body: JSON.stringify(rule) })).status, 201)
    t.after(() => fetch(`${http(a)}/v1/policies/${rule.id}`, { method: 'DELETE', headers: { authorization: admin(a).authorization } }))
    // The other processes adopt the new rule set within a second (they poll the database);
    // on a loaded machine a timer can run late, hence the margin.
    await new Promise(resolve => setTimeout(resolve, 3_000))
    const roots = (hub: HubProcess) => fetch(`${http(hub)}/v1/zk/roots`).then(r => r.status)
    assert.deepEqual([await roots(a), await roots(b), await roots(c), await roots(a)], [200, 200, 200, 200])
    assert.deepEqual([await roots(b), await roots(c)], [429, 429], 'the fifth request in the window, wherever it goes')
  })

  test('a state document changed on one process is read on another and pushed from a third', { skip }, async t => {
    const [a, b, c] = fleet
    const device = await enrollPrincipal(a)
    const { acks } = await connectDevice(t, c, device)
    const patch = await fetch(`${http(a)}/v1/devices/${device.id}/state`, { method: 'PATCH', headers: admin(a), body: JSON.stringify({ desired: { led: 'on' } }) })
    assert.equal(patch.status, 200)
    const read = await (await fetch(`${http(b)}/v1/devices/${device.id}/state`, { headers: admin(b) })).json() as { desired: unknown }
    assert.deepEqual(read.desired, { led: 'on' })
    const [delta] = await ackBodies(await acks.waitFor(1))
    assert.deepEqual(delta.delta, { led: 'on' })
  })

  test('a nullifier claimed through one process is refused through the others, also when two race', { skip, timeout: 120_000 }, async () => {
    const [a, b, c] = fleet
    const secrets = [0x5eed1n, 0x5eed2n]
    for (const secret of secrets) {
      const device = await enrollPrincipal(a)
      const added = await fetch(`${http(a)}/v1/zk/commitments`, { method: 'POST', headers: admin(a), body: JSON.stringify({ deviceId: device.id, commitment: identityLeaf(secret).toString() }) })
      assert.equal(added.status, 201)
    }
    // The app's side, against process B: leaves, epoch, proofs.
    const leaves = await (await fetch(`${http(b)}/v1/zk/leaves?after=0`)).json() as { commitments: string[], root: string }
    const tree = new SparseMerkleTree()
    leaves.commitments.forEach((leaf, i) => tree.set(i, BigInt(leaf)))
    const { epoch, reward } = await (await fetch(`${http(c)}/v1/zk/epoch`)).json() as { epoch: number, reward: number }
    const recipient = '5a'.repeat(32)
    // One proof at a time: snarkjs builds one curve (and its workers) per concurrent first
    // call, and only the last is reachable for terminate().
    const claims: string[] = []
    for (const secret of secrets) {
      const index = leaves.commitments.indexOf(identityLeaf(secret).toString())
      const input = claimCircuitInput({ secret, proof: tree.proof(index), root: tree.root, claim: { recipient, amount: BigInt(reward), epoch: BigInt(epoch) } })
      const { proof } = await snarkjs.groth16.fullProve(input, circuitArtifact('claim.wasm'), circuitArtifact('claim_final.zkey'))
      claims.push(JSON.stringify({ proof, recipient, epoch, root: tree.root.toString(), nullifierHash: nullifierHash(secret, BigInt(epoch)).toString() }))
    }
    const post = (hub: HubProcess, body: string) => fetch(`${http(hub)}/v1/zk/claims`, { method: 'POST', headers: { 'content-type': 'application/json' }, body }).then(r => r.status)

    assert.equal(await post(a, claims[0]), 201)
    assert.deepEqual([await post(b, claims[0]), await post(c, claims[0])], [409, 409])
    const raced = await Promise.all([post(b, claims[1]), post(c, claims[1])])
    assert.deepEqual(raced.sort(), [201, 409], 'exactly one of two racing claims wins')
  })
}
