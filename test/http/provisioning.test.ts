/**
 * Fleet provisioning by claim, renaming, and the gateway's guards (security headers, rate
 * limits, CORS, OpenAPI), against the real hub over real HTTP.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { startTestHub, makeKeyPair, connackCode, mqttUrl, principalOptions } from '../helpers/hub.js'

function admin (hub: { httpPort: number, adminToken: string }) {
  return async (method: string, path: string, body?: unknown): Promise<{ status: number, body: any, headers: Headers }> => {
    const res = await fetch(`http://127.0.0.1:${hub.httpPort}${path}`, {
      method,
      headers: { authorization: `Bearer ${hub.adminToken}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      body: body === undefined ? undefined : JSON.stringify(body),
    })
    const text = await res.text()
    return { status: res.status, body: text ? JSON.parse(text) : undefined, headers: res.headers }
  }
}

async function enroll (hub: { httpPort: number }, body: unknown): Promise<{ status: number, body: any }> {
  const res = await fetch(`http://127.0.0.1:${hub.httpPort}/v1/enroll`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })
  return { status: res.status, body: await res.json() }
}

const hex = (key: Uint8Array): string => Buffer.from(key).toString('hex')

test('a device enrols itself with a provisioning token, up to its uses, then connects', async t => {
  const hub = await startTestHub(t)
  const call = admin(hub)
  const created = await call('POST', '/v1/provisioning-tokens', { role: 'device', name: 'line-3', usesMax: 2 })
  assert.equal(created.status, 201)
  assert.equal(typeof created.body.token, 'string')
  assert.equal(created.body.uses, 0)

  const first = makeKeyPair()
  const enrolled = await enroll(hub, { token: created.body.token, publicKey: hex(first.publicKey) })
  assert.equal(enrolled.status, 201)
  assert.equal(enrolled.body.id, first.id)
  assert.equal(enrolled.body.role, 'device')
  assert.equal(enrolled.body.name, 'line-3')
  assert.equal(await connackCode(t, mqttUrl(hub), principalOptions(first)), 0)

  assert.equal((await enroll(hub, { token: created.body.token, publicKey: hex(first.publicKey) })).status, 409, 'same key again')
  assert.equal((await enroll(hub, { token: created.body.token, publicKey: hex(makeKeyPair().publicKey), name: 'own-name' })).status, 201)
  const usedUp = await enroll(hub, { token: created.body.token, publicKey: hex(makeKeyPair().publicKey) })
  assert.equal(usedUp.status, 403)
  assert.match(usedUp.body.message, /used up/)
  const listed = await call('GET', '/v1/provisioning-tokens')
  assert.equal(listed.body.items[0].uses, 2)
  assert.equal(JSON.stringify(listed.body).includes(created.body.token), false, 'the secret is never listed')
})

test('unknown, revoked and expired tokens, and malformed enrolments, are refused', async t => {
  const hub = await startTestHub(t)
  const call = admin(hub)
  const key = hex(makeKeyPair().publicKey)
  assert.equal((await enroll(hub, { token: 'x'.repeat(43), publicKey: key })).status, 401)
  const revoked = await call('POST', '/v1/provisioning-tokens', { role: 'device' })
  assert.equal((await call('DELETE', `/v1/provisioning-tokens/${revoked.body.id}`)).body.revoked !== null, true)
  const refused = await enroll(hub, { token: revoked.body.token, publicKey: key })
  assert.equal(refused.status, 403)
  assert.match(refused.body.message, /revoked/)
  const shortLived = await call('POST', '/v1/provisioning-tokens', { role: 'device', expiresInMs: 1_000 })
  await hub.store.sql.run('UPDATE provisioning_tokens SET expires_ms = ? WHERE id = ?', [Date.now() - 1, shortLived.body.id])
  const expired = await enroll(hub, { token: shortLived.body.token, publicKey: key })
  assert.equal(expired.status, 403)
  assert.match(expired.body.message, /expired/)
  for (const body of [{}, { token: revoked.body.token }, { token: revoked.body.token, publicKey: 'zz' }, { token: revoked.body.token, publicKey: key, role: 'node' }]) {
    assert.equal((await enroll(hub, body)).status, 400, JSON.stringify(body))
  }
  for (const body of [{ role: 'king' }, { role: 'device', usesMax: 0 }, { role: 'device', expiresInMs: 10 }, { role: 'device', extra: 1 }]) {
    assert.equal((await call('POST', '/v1/provisioning-tokens', body)).status, 400, JSON.stringify(body))
  }
  assert.equal((await call('DELETE', '/v1/provisioning-tokens/nope')).status, 404)
  const anonymous = await fetch(`http://127.0.0.1:${hub.httpPort}/v1/provisioning-tokens`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"role":"device"}' })
  assert.equal(anonymous.status, 401)
})

test('an admin renames a principal; null clears the name', async t => {
  const hub = await startTestHub(t)
  const call = admin(hub)
  const key = makeKeyPair()
  const created = await call('POST', '/v1/devices', { publicKey: hex(key.publicKey), role: 'device' })
  assert.equal((await call('PATCH', `/v1/devices/${created.body.id}`, { name: 'kitchen' })).body.name, 'kitchen')
  assert.equal((await call('PATCH', `/v1/devices/${created.body.id}`, { name: null })).body.name, null)
  assert.equal((await call('PATCH', `/v1/devices/${created.body.id}`, { name: '' })).status, 400)
  assert.equal((await call('PATCH', `/v1/devices/${'0'.repeat(32)}`, { name: 'x' })).status, 404)
})

test('enrolment by token is rate-limited per address', async t => {
  const hub = await startTestHub(t, {})
  let limited = 0
  for (let i = 0; i < 35; i++) {
    const res = await enroll(hub, { token: 'y'.repeat(43), publicKey: hex(makeKeyPair().publicKey) })
    if (res.status === 429) limited++
  }
  assert.ok(limited >= 5, `expected 429s after 30 enrolments a minute, got ${limited}`)
})

test('security headers on every answer; the OpenAPI document lists the routes', async t => {
  const hub = await startTestHub(t)
  const health = await fetch(`http://127.0.0.1:${hub.httpPort}/healthz`)
  assert.equal(health.headers.get('x-content-type-options'), 'nosniff')
  assert.ok(health.headers.get('content-security-policy'))
  assert.equal(health.headers.get('access-control-allow-origin'), null, 'no CORS unless configured')
  const spec = await (await fetch(`http://127.0.0.1:${hub.httpPort}/docs/json`)).json() as { openapi: string, paths: Record<string, unknown> }
  assert.match(spec.openapi, /^3\./)
  for (const path of ['/v1/devices/', '/v1/devices/{id}', '/v1/enroll', '/v1/provisioning-tokens']) {
    assert.ok(spec.paths[path], `${path} in ${Object.keys(spec.paths).join(', ')}`)
  }
  const ui = await fetch(`http://127.0.0.1:${hub.httpPort}/docs/`)
  assert.equal(ui.status, 200)
})

test('/readyz reports each check; 503 once the database is gone', async t => {
  const hub = await startTestHub(t)
  const ready = await fetch(`http://127.0.0.1:${hub.httpPort}/readyz`)
  assert.equal(ready.status, 200)
  assert.deepEqual(await ready.json(), { status: 'ready', checks: { listeners: 'ok', database: 'ok' } })
  await hub.store.sql.close()
  const broken = await fetch(`http://127.0.0.1:${hub.httpPort}/readyz`)
  assert.equal(broken.status, 503)
  assert.equal((await broken.json() as { checks: Record<string, string> }).checks.database, 'failing')
})
