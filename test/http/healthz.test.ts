import assert from 'node:assert/strict'
import { test } from 'node:test'
import { startHub } from './helpers.js'

test('GET /healthz is 503 until the hub is ready, then 200, without a token', async (t) => {
  let ready = false
  const hub = await startHub(t, { isReady: () => ready })
  const starting = await hub.call('GET', '/healthz', { token: null })
  assert.equal(starting.status, 503)
  assert.deepEqual(starting.body, { status: 'starting' })
  assert.equal(starting.headers.get('cache-control'), 'no-store')
  ready = true
  const ok = await hub.call('GET', '/healthz', { token: null })
  assert.equal(ok.status, 200)
  assert.deepEqual(ok.body, { status: 'ok' })
})

test('GET /healthz is 200 when no readiness check is given', async (t) => {
  const hub = await startHub(t)
  assert.equal((await hub.call('GET', '/healthz', { token: null })).status, 200)
})
