/**
 * Principal-signed HTTP requests (docs/protocol.md §8.1) against the real hub: the same
 * skew window, replay guard and revocation rules as MQTT CONNECT.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { signHttpRequest, contentDigestHeader, bodyDigest } from '../../src/protocol/index.js'
import { startTestHub, enrollPrincipal, makeKeyPair } from '../helpers/hub.js'

test('a signed GET identifies the principal; every bad variant is refused', async t => {
  const hub = await startTestHub(t, { protocol: { skewMs: 10_000 } })
  const device = await enrollPrincipal(hub)
  const url = `http://127.0.0.1:${hub.httpPort}`
  const get = (headers: Record<string, string>, target = '/v1/me') => fetch(url + target, { headers })

  const ok = await get(signHttpRequest(device.id, device.sign, { method: 'GET', target: '/v1/me' }))
  assert.equal(ok.status, 200)
  const me = await ok.json() as { kind: string, principal: { id: string, role: string } }
  assert.equal(me.principal.id, device.id)
  assert.equal(me.principal.role, 'device')

  const impostor = makeKeyPair()
  const cases: Array<[string, Record<string, string>, number]> = [
    ['signed by another key', signHttpRequest(device.id, impostor.sign, { method: 'GET', target: '/v1/me' }), 401],
    ['unknown principal', signHttpRequest(impostor.id, impostor.sign, { method: 'GET', target: '/v1/me' }), 401],
    ['signed for another path', signHttpRequest(device.id, device.sign, { method: 'GET', target: '/v1/me?x=1' }), 401],
    ['signed for another method', signHttpRequest(device.id, device.sign, { method: 'POST', target: '/v1/me' }), 401],
    ['too old', signHttpRequest(device.id, device.sign, { method: 'GET', target: '/v1/me', ts: Date.now() - 60_000 }), 401],
    ['from the future', signHttpRequest(device.id, device.sign, { method: 'GET', target: '/v1/me', ts: Date.now() + 60_000 }), 401],
    ['malformed', { authorization: `MN1-Ed25519 id=${device.id}, ts=1, nonce=zz, sig=00` }, 401],
    ['unknown scheme', { authorization: 'Basic dXNlcjpwYXNz' }, 401],
    ['wrong admin token', { authorization: 'Bearer not-the-token-at-all' }, 401],
  ]
  for (const [what, headers, status] of cases) {
    const res = await get(headers)
    assert.equal(res.status, status, what)
    const body = await res.json() as { code: string, message: string }
    assert.equal(body.code, 'MN_ERR_UNAUTHORIZED', what)
  }
  const anonymous = await (await get({})).json() as { kind: string }
  assert.equal(anonymous.kind, 'anonymous')
})

test('a replayed signed request is refused', async t => {
  const hub = await startTestHub(t)
  const device = await enrollPrincipal(hub)
  const headers = signHttpRequest(device.id, device.sign, { method: 'GET', target: '/v1/me', nonce: new Uint8Array(randomBytes(16)) })
  assert.equal((await fetch(`http://127.0.0.1:${hub.httpPort}/v1/me`, { headers })).status, 200)
  const again = await fetch(`http://127.0.0.1:${hub.httpPort}/v1/me`, { headers })
  assert.equal(again.status, 401)
  assert.match((await again.json() as { message: string }).message, /replayed/)
})

test('a revoked principal gets 403 once its signature verified; principals cannot use admin routes', async t => {
  const hub = await startTestHub(t)
  const device = await enrollPrincipal(hub)
  const admin = await fetch(`http://127.0.0.1:${hub.httpPort}/v1/devices`, {
    headers: signHttpRequest(device.id, device.sign, { method: 'GET', target: '/v1/devices' }),
  })
  assert.equal(admin.status, 403)
  await fetch(`http://127.0.0.1:${hub.httpPort}/v1/devices/${device.id}`, { method: 'DELETE', headers: { authorization: `Bearer ${hub.adminToken}` } })
  const res = await fetch(`http://127.0.0.1:${hub.httpPort}/v1/me`, { headers: signHttpRequest(device.id, device.sign, { method: 'GET', target: '/v1/me' }) })
  assert.equal(res.status, 403)
})

test('a body that differs from the signed Content-Digest is refused', async t => {
  const hub = await startTestHub(t)
  const device = await enrollPrincipal(hub)
  const url = `http://127.0.0.1:${hub.httpPort}/v1/me`
  // GET with a signed digest of a body that never comes.
  const phantom = signHttpRequest(device.id, device.sign, { method: 'GET', target: '/v1/me', body: '{"a":1}' })
  assert.equal((await fetch(url, { headers: phantom })).status, 400)
  // A malformed digest header.
  const headers = { ...signHttpRequest(device.id, device.sign, { method: 'GET', target: '/v1/me' }), 'content-digest': 'md5=abc' }
  assert.equal((await fetch(url, { headers })).status, 400)
  assert.equal(contentDigestHeader(bodyDigest('')), 'sha-256=:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=:')
})

test('state documents over signed requests: a device reads its own; a service steers any; others are refused', async t => {
  const hub = await startTestHub(t)
  const device = await enrollPrincipal(hub)
  const other = await enrollPrincipal(hub)
  const service = await enrollPrincipal(hub, 'service')
  const base = `http://127.0.0.1:${hub.httpPort}`
  const call = async (who: typeof device, method: string, target: string, body?: string): Promise<number> => {
    const headers = { ...signHttpRequest(who.id, who.sign, { method, target, body }), ...(body ? { 'content-type': 'application/json' } : {}) }
    return (await fetch(base + target, { method, headers, body })).status
  }
  const own = `/v1/devices/${device.id}/state`
  const patch = JSON.stringify({ desired: { led: 'on' } })
  assert.equal(await call(service, 'PATCH', own, patch), 200)
  assert.equal(await call(device, 'GET', own), 200)
  assert.equal(await call(device, 'PATCH', own, patch), 403)
  assert.equal(await call(other, 'GET', own), 403)
  assert.equal(await call(service, 'GET', own), 200)
  assert.equal((await fetch(base + own)).status, 401)
})
