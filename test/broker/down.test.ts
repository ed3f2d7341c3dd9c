/**
 * What services publish on a device's down topic is checked before the device sees it:
 * devices trust that topic, so no forged Ack, no borrowed src, nothing undecodable.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { encodeEnvelope, encodeAck, signEnvelope, idBytes, parsePayload, MessageType } from '../../src/protocol/index.js'
import { startTestHub } from '../helpers/hub.js'
import { connectTestDevice, connectTestService, metricValue } from '../helpers/device.js'

test('a service command reaches the device; forged, borrowed or junk ones do not', async t => {
  const hub = await startTestHub(t)
  const service = await connectTestService(t, hub)
  const device = await connectTestDevice(t, hub)
  const down = `mn/v1/d/${device.principal.id}/down`
  const send = (payload: Uint8Array) => service.client.publishAsync(down, Buffer.from(payload), { qos: 1 })

  // Refused: an Ack forged with the hub as src, an Ack with the service's own src, another
  // principal's src, an up-only type, junk, and a signature by the wrong key.
  await send(encodeAck({ re: new Uint8Array(16), hubId: hub.nodeId, dst: device.principal.id }))
  await send(encodeAck({ re: new Uint8Array(16), hubId: service.principal.id, dst: device.principal.id }))
  await send(encodeEnvelope({ type: MessageType.ConfigurationUpdate, src: device.principal.id, body: { a: 1 } }))
  await send(encodeEnvelope({ type: MessageType.StatusUpdate, src: service.principal.id, body: { a: 1 } }))
  await send(Buffer.from('junk'))
  await send(signEnvelope(encodeEnvelope({ type: MessageType.ConfigurationUpdate, src: service.principal.id, body: { a: 1 } }), idBytes(service.principal.id), device.principal.sign))
  // Accepted, unsigned and signed.
  await send(encodeEnvelope({ type: MessageType.ConfigurationUpdate, src: service.principal.id, body: { interval: 5 } }))
  await send(signEnvelope(encodeEnvelope({ type: MessageType.ConfigurationUpdate, src: service.principal.id, body: { interval: 6 }, prio: 1 }), idBytes(service.principal.id), service.principal.sign))

  const received = await device.acks.waitFor(2)
  const bodies = received.map(m => {
    const parsed = parsePayload(m.payload, { payloadBytesMax: 65536, direction: 'down' })
    assert.ok(parsed.ok)
    return parsed.items[0].envelope?.body
  })
  assert.deepEqual(bodies, [{ interval: 5 }, { interval: 6 }])
  assert.equal(service.client.connected, true)
  for (const reason of ['type', 'src', 'decode', 'signature']) {
    assert.ok(await metricValue(hub, 'metanode_rejections_total', `reason="${reason}"`) >= 1, reason)
  }
})
