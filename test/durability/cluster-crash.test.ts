/**
 * Crash test of one process of a three-process fleet (one Redis, one data directory): the
 * device publishes QoS 1 envelopes through process B and the persistent service listens on
 * process C. At a seeded random point B or C is killed with SIGKILL and started again with
 * the same data directory, ports and Redis. Every message whose PUBACK the device got must
 * reach the service exactly once after dedupe: when B dies, from Redis and the processes
 * that live on; when C dies (with the service on it, or with its session queued), from the
 * Redis queue, the service coming back through process A. Retained messages must survive,
 * and the shared metanode.db must pass `PRAGMA integrity_check` at the end.
 *
 * MN_CLUSTER_CRASH_SEED and MN_CLUSTER_CRASH_SEEDS choose the seeds (default 1 and 4: each
 * pairing of victim and online or offline service once).
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import type { MqttClient } from 'mqtt'
import { enrollPrincipal, mqttUrl, principalOptions, tempDir } from '../helpers/hub.js'
import { redisAvailable, startRedis } from '../helpers/redis.js'
import { restartHubProcess, startHubProcess, type HubProcess } from '../helpers/hub-process.js'
import { RecordLog, Traffic, between, connectMqtt, expectRetained, integrityCheck, mulberry32 } from './crash-helpers.js'

const skip = !redisAvailable() && !process.env.MN_REQUIRE_REDIS
  ? 'redis-server is not installed (Debian: apt-get install redis-server); the cluster tests need a real Redis'
  : false

const FIRST_SEED = Number(process.env.MN_CLUSTER_CRASH_SEED ?? 1)
const SEEDS = Number(process.env.MN_CLUSTER_CRASH_SEEDS ?? 4)

test(`no acknowledged QoS 1 message is lost over ${SEEDS} SIGKILLs of one process of a fleet`, { skip, timeout: 60_000 + SEEDS * 15_000 }, async t => {
  const redis = await startRedis(t)
  const dataDir = join(tempDir(t, 'metanode-cluster-crash-'), 'data')
  const args = ['--cluster', redis.url, '--allow-anonymous']
  // The first process creates the shared files (database, admin token, node key); the
  // others start once they exist.
  const fleet: Record<'a' | 'b' | 'c', HubProcess> = { a: await startHubProcess(t, { dataDir, args }), b: null!, c: null! }
  ;[fleet.b, fleet.c] = await Promise.all([startHubProcess(t, { dataDir, args }), startHubProcess(t, { dataDir, args })])
  const device = await enrollPrincipal(fleet.a)
  const service = await enrollPrincipal(fleet.a, 'service')

  const records = new RecordLog()
  const acked = new Set<number>()
  const sequence = { next: 0 }
  const retained = new Map<string, string>()
  const connectService = (hub: HubProcess): Promise<MqttClient> => connectMqtt(t, mqttUrl(hub), principalOptions(service, { clean: false }), records.onMessage)
  const connectDevice = (hub: HubProcess): Promise<MqttClient> => connectMqtt(t, mqttUrl(hub), principalOptions(device))

  let serviceClient: MqttClient | null = await connectService(fleet.c)
  await serviceClient.subscribeAsync(`mn/v1/bridge/+/${device.id}`, { qos: 1 })

  for (let i = 0; i < SEEDS; i++) {
    const seed = FIRST_SEED + i
    const random = mulberry32(seed)
    const plan = {
      // Every pairing, whatever the seeds: B (the device's) and C (the service's) alternate,
      // with the service online at the kill for two seeds in four.
      victim: i % 2 === 0 ? 'b' as const : 'c' as const,
      online: i % 4 < 2,
      killAfterMs: between(random, 30, 400),
      window: between(random, 10, 50),
      // After B comes back the device sends some more, through B or A.
      sendAfterRestart: between(random, 50, 300),
      deviceTo: random() < 0.5 ? 'a' as const : 'b' as const,
    }
    if (plan.online && !serviceClient) serviceClient = await connectService(fleet.c)
    if (!plan.online && serviceClient) {
      await serviceClient.endAsync()
      serviceClient = null
    }

    const topic = `plain/crash/${seed}`
    const anonymous = await connectMqtt(t, mqttUrl(fleet.a), {})
    await anonymous.publishAsync(topic, `seed ${seed}`, { qos: 1, retain: true })
    retained.set(topic, `seed ${seed}`)
    await anonymous.endAsync()

    const traffic = new Traffic(await connectDevice(fleet.b), device, { sequence, window: plan.window, acked })
    await sleep(plan.killAfterMs)
    const victim = fleet[plan.victim]
    await victim.kill()
    let after: Traffic | null = null
    if (plan.victim === 'b') {
      await traffic.finish(true)
      fleet.b = await restartHubProcess(t, victim)
      after = new Traffic(await connectDevice(fleet[plan.deviceTo]), device, { sequence, window: plan.window, acked, limit: plan.sendAfterRestart })
      await after.finish(false, { whenSent: true })
      // The service reconnects only now: a restored session gets live records before its
      // CONNACK (see crash.test.ts), which stalls mqtt.js.
      serviceClient ??= await connectService(fleet.c)
    } else {
      // The device's process lives on: its publishes in flight get their PUBACKs.
      await traffic.finish(false)
      serviceClient?.end(true)
      // The service does not wait for C: its session and queue are in Redis.
      serviceClient = await connectService(fleet.a)
      fleet.c = await restartHubProcess(t, victim)
    }
    await records.waitForAll(acked, 20_000, `seed ${seed} (${JSON.stringify(plan)})`)
    await expectRetained(t, mqttUrl(fleet[random() < 0.5 ? 'a' : plan.victim]), 'plain/crash/#', retained)
    if (plan.victim === 'c') {
      // Back to C for the next seed.
      await serviceClient.endAsync()
      serviceClient = null
    }
    t.diagnostic(`seed ${seed}: ${JSON.stringify(plan)}: ${traffic.ackedHere} acknowledged before the kill${after ? `, ${after.ackedHere} after the restart` : ''}`)
  }

  await serviceClient?.endAsync()
  const codes = await Promise.all([fleet.a.stop(), fleet.b.stop(), fleet.c.stop()])
  assert.deepEqual(codes, [0, 0, 0], 'every process stops cleanly on SIGTERM')
  assert.equal(integrityCheck(join(dataDir, 'metanode.db')), 'ok', 'metanode.db')
  records.assertNothingLost(t, SEEDS, sequence.next, acked)
})
