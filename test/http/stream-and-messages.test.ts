/**
 * The HTTP ways into the bridge and the down topic: an SSE stream of bridge records, and
 * POST /v1/devices/{id}/messages, with real devices on MQTT.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { signHttpRequest, parsePayload } from '../../src/protocol/index.js'
import { startTestHub, enrollPrincipal } from '../helpers/hub.js'
import { connectTestDevice } from '../helpers/device.js'

/** Reads SSE events from a fetch body until `count` records arrived. */
async function readEvents (body: ReadableStream<Uint8Array>, count: number): Promise<Array<Record<string, unknown>>> {
  const reader = body.getReader()
  const decoder = new TextDecoder()
  const events: Array<Record<string, unknown>> = []
  let buffer = ''
  while (events.length < count) {
    const { value, done } = await reader.read()
    if (done) break
    buffer += decoder.decode(value, { stream: true })
    let end: number
    while ((end = buffer.indexOf('\n\n')) >= 0) {
      const chunk = buffer.slice(0, end)
      buffer = buffer.slice(end + 2)
      const data = chunk.split('\n').find(line => line.startsWith('data: '))
      if (data) events.push(JSON.parse(data.slice(6)) as Record<string, unknown>)
    }
  }
  await reader.cancel()
  return events
}

test('the SSE stream carries bridge records, filtered by type and device', async t => {
  const hub = await startTestHub(t)
  const one = await connectTestDevice(t, hub)
  const two = await connectTestDevice(t, hub)
  const controller = new AbortController()
  t.after(() => controller.abort())
  const res = await fetch(`http://127.0.0.1:${hub.httpPort}/v1/stream?type=status_update&device=${one.principal.id}`, {
    headers: { authorization: `Bearer ${hub.adminToken}` },
    signal: controller.signal,
  })
  assert.equal(res.status, 200)
  assert.match(res.headers.get('content-type') ?? '', /text\/event-stream/)
  // The hub answers only once its subscription is in place, so nothing published now is missed.
  const reading = readEvents(res.body!, 2)
  await two.up(two.envelope({ body: { n: 'other device' } }))
  await one.up(one.envelope({ type: 0, body: { uptime: 1 } }))
  await one.up(one.envelope({ body: { n: 1 } }))
  await one.up(one.envelope({ body: { n: 2 } }))
  const events = await reading
  for (const event of events) {
    assert.equal(event.src, one.principal.id)
    assert.equal(event.typeName, 'status_update')
    assert.equal(typeof event.raw, 'string', 'raw bytes as base64')
  }
  assert.deepEqual(events.map(e => (e.body as { n: number }).n), [1, 2])
})

test('the stream refuses anonymous callers and devices', async t => {
  const hub = await startTestHub(t)
  const device = await enrollPrincipal(hub)
  assert.equal((await fetch(`http://127.0.0.1:${hub.httpPort}/v1/stream`)).status, 401)
  const signed = await fetch(`http://127.0.0.1:${hub.httpPort}/v1/stream`, { headers: signHttpRequest(device.id, device.sign, { method: 'GET', target: '/v1/stream' }) })
  assert.equal(signed.status, 403)
  const bad = await fetch(`http://127.0.0.1:${hub.httpPort}/v1/stream?type=Bad-Type`, { headers: { authorization: `Bearer ${hub.adminToken}` } })
  assert.equal(bad.status, 400)
})

test('a service sends a command to a device over HTTP; the device receives it from the hub', async t => {
  const hub = await startTestHub(t)
  const device = await connectTestDevice(t, hub)
  const service = await enrollPrincipal(hub, 'service')
  const target = `/v1/devices/${device.principal.id}/messages`
  const body = JSON.stringify({ type: 'ConfigurationUpdate', body: { intervalMs: 5000 }, prio: 1 })
  const res = await fetch(`http://127.0.0.1:${hub.httpPort}${target}`, {
    method: 'POST',
    headers: { ...signHttpRequest(service.id, service.sign, { method: 'POST', target, body }), 'content-type': 'application/json' },
    body,
  })
  assert.equal(res.status, 202)
  const answer = await res.json() as { id: string, online: boolean }
  assert.equal(answer.online, true)
  const [message] = await device.acks.waitFor(1)
  const parsed = parsePayload(message.payload, { payloadBytesMax: 65536, direction: 'down' })
  assert.ok(parsed.ok)
  const item = parsed.items[0]
  assert.equal(item.signed, true, 'prio 1 goes signed by the hub')
  assert.equal(item.envelope?.src, hub.nodeId)
  assert.deepEqual(item.envelope?.body, { intervalMs: 5000 })
  assert.equal(Buffer.from(item.envelope!.id).toString('hex'), answer.id)
})

test('messages: tampered body, devices as senders, unknown device, bad type', async t => {
  const hub = await startTestHub(t)
  const device = await enrollPrincipal(hub)
  const service = await enrollPrincipal(hub, 'service')
  const url = (id: string) => `http://127.0.0.1:${hub.httpPort}/v1/devices/${id}/messages`
  const target = `/v1/devices/${device.id}/messages`
  const body = JSON.stringify({ type: 'ConfigurationUpdate', body: { a: 1 } })
  const tampered = await fetch(url(device.id), {
    method: 'POST',
    headers: { ...signHttpRequest(service.id, service.sign, { method: 'POST', target, body }), 'content-type': 'application/json' },
    body: body.replace('1', '2'),
  })
  assert.equal(tampered.status, 400)
  assert.match((await tampered.json() as { message: string }).message, /Content-Digest/)
  const asDevice = await fetch(url(device.id), {
    method: 'POST',
    headers: { ...signHttpRequest(device.id, device.sign, { method: 'POST', target, body }), 'content-type': 'application/json' },
    body,
  })
  assert.equal(asDevice.status, 403)
  const admin = { authorization: `Bearer ${hub.adminToken}`, 'content-type': 'application/json' }
  assert.equal((await fetch(url('0'.repeat(32)), { method: 'POST', headers: admin, body })).status, 404)
  assert.equal((await fetch(url(service.id), { method: 'POST', headers: admin, body })).status, 404, 'not a device')
  assert.equal((await fetch(url(device.id), { method: 'POST', headers: admin, body: JSON.stringify({ type: 'Ack', body: {} }) })).status, 400)
  const offline = await fetch(url(device.id), { method: 'POST', headers: admin, body })
  assert.equal(offline.status, 202)
  assert.equal((await offline.json() as { online: boolean }).online, false)
})

test('with wait, the answer comes once the device acknowledged the message, or says it did not', async t => {
  const hub = await startTestHub(t)
  const device = await connectTestDevice(t, hub)
  const admin = { authorization: `Bearer ${hub.adminToken}`, 'content-type': 'application/json' }
  const send = (id: string, extra: Record<string, unknown>) => fetch(`http://127.0.0.1:${hub.httpPort}/v1/devices/${id}/messages`, {
    method: 'POST', headers: admin, body: JSON.stringify({ type: 'ConfigurationUpdate', body: { n: 1 }, wait: true, ...extra }),
  })
  const res = await send(device.principal.id, {})
  assert.equal(res.status, 202)
  assert.deepEqual({ ...await res.json() as object, id: undefined }, { id: undefined, online: true, delivered: true })
  assert.equal((await device.acks.waitFor(1)).length, 1)
  const offline = await enrollPrincipal(hub)
  const late = await send(offline.id, { timeoutMs: 200 })
  assert.deepEqual({ ...await late.json() as object, id: undefined }, { id: undefined, online: false, delivered: false })
  assert.equal((await send(device.principal.id, { timeoutMs: 5 })).status, 400)
})
