/**
 * CONNECT authentication (protocol-v1 §2): every CONNACK case, with real mqtt.js clients
 * against a real hub.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { buildConnectPassword } from '../../src/protocol/index.js'
import {
  startTestHub, enrollPrincipal, makeKeyPair, mqttUrl, principalOptions, connackCode, connectClient,
} from '../helpers/hub.js'
import { rawConnection, CONNECT_EMPTY_ID_PERSISTENT } from '../helpers/raw-mqtt.js'

test('an enrolled device with a fresh signed password is accepted', async t => {
  const hub = await startTestHub(t)
  const device = await enrollPrincipal(hub)
  assert.equal(await connackCode(t, mqttUrl(hub), principalOptions(device)), 0)
})

test('MQTT over WebSocket on the HTTP port authenticates the same way', async t => {
  const hub = await startTestHub(t)
  const device = await enrollPrincipal(hub)
  assert.equal(await connackCode(t, `ws://127.0.0.1:${hub.httpPort}/mqtt`, principalOptions(device)), 0)
})

test('client id different from username gets 5', async t => {
  const hub = await startTestHub(t)
  const device = await enrollPrincipal(hub)
  const other = await enrollPrincipal(hub)
  assert.equal(await connackCode(t, mqttUrl(hub), principalOptions(device, { clientId: other.id })), 5)
})

test('an unknown principal gets 4', async t => {
  const hub = await startTestHub(t)
  const stranger = makeKeyPair()
  assert.equal(await connackCode(t, mqttUrl(hub), principalOptions(stranger)), 4)
})

test('a password that is not 88 bytes gets 4', async t => {
  const hub = await startTestHub(t)
  const device = await enrollPrincipal(hub)
  const password = Buffer.from(buildConnectPassword(device.id, device.sign))
  for (const bad of [password.subarray(0, 87), Buffer.concat([password, Buffer.from([0])]), Buffer.alloc(0)]) {
    assert.equal(await connackCode(t, mqttUrl(hub), principalOptions(device, { password: bad })), 4)
  }
})

test('a password signed by another key gets 4: no one else can take a principal session', async t => {
  const hub = await startTestHub(t)
  const device = await enrollPrincipal(hub)
  const impostor = makeKeyPair()
  const password = Buffer.from(buildConnectPassword(device.id, impostor.sign))
  assert.equal(await connackCode(t, mqttUrl(hub), principalOptions(device, { password })), 4)
})

test('a timestamp outside the skew window gets 4, both past and future', async t => {
  const hub = await startTestHub(t, { protocol: { skewMs: 10_000 } })
  const device = await enrollPrincipal(hub)
  for (const ts of [Date.now() - 20_000, Date.now() + 20_000]) {
    const password = Buffer.from(buildConnectPassword(device.id, device.sign, { ts }))
    assert.equal(await connackCode(t, mqttUrl(hub), principalOptions(device, { password })), 4)
  }
})

test('a nonce used before gets 4; a refused CONNECT does not consume its nonce', async t => {
  const hub = await startTestHub(t)
  const device = await enrollPrincipal(hub)
  const nonce = new Uint8Array(randomBytes(16))
  const ts = Date.now()
  // First with client id ≠ username: refused before the nonce would be recorded.
  const password = Buffer.from(buildConnectPassword(device.id, device.sign, { ts, nonce }))
  assert.equal(await connackCode(t, mqttUrl(hub), principalOptions(device, { password, clientId: 'x' })), 5)
  const first = await connectClient(t, mqttUrl(hub), principalOptions(device, { password }))
  await first.endAsync()
  assert.equal(await connackCode(t, mqttUrl(hub), principalOptions(device, { password })), 4)
})

test('a revoked principal gets 5, and only after its signature verified', async t => {
  const hub = await startTestHub(t)
  const device = await enrollPrincipal(hub)
  await hub.store.principals.revoke(device.id, Date.now())
  hub.broker.revoke(device.id)
  assert.equal(await connackCode(t, mqttUrl(hub), principalOptions(device)), 5)
  // Someone without the key learns nothing of the revocation: they get 4.
  const impostor = makeKeyPair()
  const password = Buffer.from(buildConnectPassword(device.id, impostor.sign))
  assert.equal(await connackCode(t, mqttUrl(hub), principalOptions(device, { password })), 4)
})

test('revocation over HTTP closes the live session at once', async t => {
  const hub = await startTestHub(t)
  const device = await enrollPrincipal(hub)
  const client = await connectClient(t, mqttUrl(hub), principalOptions(device))
  const closed = new Promise<void>(resolve => client.once('close', () => resolve()))
  const res = await fetch(`http://127.0.0.1:${hub.httpPort}/v1/devices/${device.id}`, {
    method: 'DELETE',
    headers: { authorization: `Bearer ${hub.adminToken}` },
  })
  assert.equal(res.status, 200)
  await closed
  assert.equal(await connackCode(t, mqttUrl(hub), principalOptions(device)), 5)
})

test('no credentials: 5 by default; admitted in anonymous mode', async t => {
  const secure = await startTestHub(t)
  assert.equal(await connackCode(t, mqttUrl(secure), { clientId: 'plain-client' }), 5)
  const dev = await startTestHub(t, { allowAnonymous: true })
  assert.equal(await connackCode(t, mqttUrl(dev), { clientId: 'plain-client' }), 0)
})

test('an anonymous client with an enrolled principal id gets 5', async t => {
  const hub = await startTestHub(t, { allowAnonymous: true })
  const device = await enrollPrincipal(hub)
  const session = await connectClient(t, mqttUrl(hub), principalOptions(device))
  assert.equal(await connackCode(t, mqttUrl(hub), { clientId: device.id }), 5)
  assert.equal(session.connected, true, 'the principal keeps its session')
})

test('[MQTT-3.1.3-8] an empty client id with clean session off gets 2, in both modes', async t => {
  for (const allowAnonymous of [false, true]) {
    const hub = await startTestHub(t, { allowAnonymous })
    const raw = await rawConnection(t, hub.mqttPort)
    raw.send(CONNECT_EMPTY_ID_PERSISTENT)
    const connack = await raw.next()
    assert.equal(connack.cmd, 'connack')
    assert.equal((connack as { returnCode?: number }).returnCode, 2)
    await raw.closed
  }
  const dev = await startTestHub(t, { allowAnonymous: true })
  assert.equal(await connackCode(t, mqttUrl(dev), { clientId: '', clean: true }), 0, 'empty id with clean session is assigned one')
})
