/**
 * The device SDK against the state feature: onStateDelta, reportState and StatusSync work
 * as they are, and a device the SDK reconnects is brought up to date.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { DeviceClient, type StateDelta } from '../../device-sdk/index.js'
import { startTestHub, mqttUrl } from '../helpers/hub.js'
import { FAST_RECONNECT, enrolledKeyPair, nextEvent } from '../device-sdk/helpers.js'
import { startProxy } from '../device-sdk/proxy.js'
import { call, statePath } from './helpers.js'

test('SDK: a device applies each delta and reports it; StatusSync returns the whole document', async t => {
  const hub = await startTestHub(t)
  const keyPair = await enrolledKeyPair(hub)
  const device = new DeviceClient({ url: mqttUrl(hub), keyPair, hubId: hub.nodeId, reconnect: FAST_RECONNECT })
  t.after(() => device.close())

  // The device of the SDK's README: apply the delta, report what it now is.
  const applied: Array<{ delta: StateDelta, version: unknown }> = []
  let wake: () => void = () => {}
  device.onStateDelta(async (delta, message) => {
    assert.equal(message.src, hub.nodeId)
    const ack = await device.reportState(delta.delta)
    applied.push({ delta, version: (ack.result as { version: number }).version })
    wake()
  })
  const nextApplied = (count: number): Promise<void> => new Promise(resolve => {
    wake = () => { if (applied.length >= count) resolve() }
    wake()
  })
  await device.connect()

  const path = statePath(device.id)
  assert.equal((await call(hub, 'PATCH', path, { body: { desired: { led: 'on', fan: { speed: 2 } } } })).status, 200)
  await nextApplied(1)
  assert.deepEqual(applied[0], { delta: { delta: { led: 'on', fan: { speed: 2 } }, version: 1 }, version: 2 })

  const document = (await call(hub, 'GET', path)).body
  assert.deepEqual(document.delta, {})
  assert.deepEqual(document.reported, { led: 'on', fan: { speed: 2 } })
  const sync = await device.publish('StatusSync', { version: 2 })
  assert.deepEqual(sync.result, document)

  // A device closed and started again, desired having changed meanwhile.
  await device.close()
  assert.equal((await call(hub, 'PATCH', path, { body: { desired: { fan: { speed: 3 } } } })).status, 200)
  const again = new DeviceClient({ url: mqttUrl(hub), keyPair, hubId: hub.nodeId, reconnect: FAST_RECONNECT })
  t.after(() => again.close())
  const pending = new Promise<StateDelta>(resolve => again.onStateDelta(resolve))
  await again.connect()
  assert.deepEqual(await pending, { delta: { fan: { speed: 3 } }, version: 3 })
})

test('SDK: a device whose connection was cut gets the delta made while it was away when the SDK reconnects', async t => {
  const hub = await startTestHub(t)
  const proxy = await startProxy(t, hub.mqttPort)
  const device = new DeviceClient({ url: proxy.url, keyPair: await enrolledKeyPair(hub), hubId: hub.nodeId, reconnect: FAST_RECONNECT })
  t.after(() => device.close())
  const deltas: StateDelta[] = []
  let wake: () => void = () => {}
  device.onStateDelta(delta => {
    deltas.push(delta)
    wake()
  })
  await device.connect()

  proxy.setDown(true)
  const dropped = nextEvent(device, 'disconnect')
  proxy.cut()
  await dropped
  assert.equal((await call(hub, 'PATCH', statePath(device.id), { body: { desired: { led: 'on' } } })).status, 200)

  const reconnected = nextEvent(device, 'connect')
  const delivered = new Promise<void>(resolve => {
    wake = () => { if (deltas.length > 0) resolve() }
    wake()
  })
  proxy.setDown(false)
  await Promise.all([reconnected, delivered])
  assert.deepEqual(deltas[0], { delta: { led: 'on' }, version: 1 })
  assert.ok(deltas.every(d => d.version === 1), 'any repeat is the same delta')
})
