/**
 * A cluster process whose Redis goes away keeps running and refuses what it can no longer
 * check (a CONNECT gets 3, server unavailable; a signed request 503) instead of accepting it
 * unchecked or dying; once Redis is back, it serves again without a restart.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { signHttpRequest } from '../../src/protocol/index.js'
import { connackCode, enrollPrincipal, mqttUrl, principalOptions, startTestHub } from '../helpers/hub.js'
import { redisAvailable, startRedis } from '../helpers/redis.js'

const skip = !redisAvailable() && !process.env.MN_REQUIRE_REDIS
  ? 'redis-server is not installed (Debian: apt-get install redis-server); the cluster tests need a real Redis'
  : false

async function eventually (what: string, check: () => Promise<boolean>): Promise<void> {
  // A liveness bound: ioredis notices a lost connection and reconnects on its own schedule.
  const deadline = Date.now() + 20_000
  while (!await check()) {
    if (Date.now() > deadline) throw new Error(`${what}: not within 20 s`)
    await new Promise(resolve => setTimeout(resolve, 200))
  }
}

test('a cluster process outlives its Redis, refuses meanwhile, and serves again when Redis is back', { skip, timeout: 90_000 }, async t => {
  const redis = await startRedis(t)
  const hub = await startTestHub(t, { cluster: { redisUrl: redis.url } })
  const base = `http://127.0.0.1:${hub.httpPort}`
  const device = await enrollPrincipal(hub)
  assert.equal(await connackCode(t, mqttUrl(hub), principalOptions(device)), 0)

  await redis.stop()
  const signedStatus = async () => (await fetch(`${base}/v1/me`, { headers: signHttpRequest(device.id, device.sign, { method: 'GET', target: '/v1/me' }) })).status
  await eventually('a signed request refused with 503', async () => await signedStatus() === 503)
  assert.equal(await connackCode(t, mqttUrl(hub), principalOptions(device)), 3, 'CONNACK 3: server unavailable')
  assert.equal((await fetch(`${base}/healthz`)).status, 200, 'the process itself is up')

  await startRedis(t, redis.port)
  await eventually('signed requests served again', async () => await signedStatus() === 200)
  assert.equal(await connackCode(t, mqttUrl(hub), principalOptions(device)), 0)
})
