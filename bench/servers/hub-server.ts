/**
 * The hub under test, in its own process so that its CPU time and memory can be read from
 * /proc alone. Rate limits are lifted (MQTT publishes per client, HTTP requests per
 * principal): the benches measure the pipeline and the gateway, not the limiters, which
 * still run and count.
 *
 * The environment picks the broker's backends (the bench passes its own on, so it sets
 * these before each start); unset, the hub runs as it always did here, with the default
 * durable persistence in a fresh temporary data directory:
 * - BENCH_HUB_PERSISTENCE: `durable` or `memory` (HubConfig.brokerPersistence);
 * - BENCH_HUB_REDIS_URL: cluster mode on that Redis (sessions and routing in Redis);
 * - BENCH_HUB_DATA_DIR: use this data directory as it is, shared by the processes of a
 *   cluster, and leave it behind (its owner, the bench, removes it).
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Gauge } from 'prom-client'
import { startHub, type Hub } from '../../src/hub.js'
import type { GroupCommitStats } from '../../broker/persistence/sqlite-persistence.js'
import { serveControl } from './control.js'

const persistence = process.env.BENCH_HUB_PERSISTENCE || undefined
if (persistence !== undefined && persistence !== 'durable' && persistence !== 'memory') {
  throw new Error(`BENCH_HUB_PERSISTENCE must be "durable" or "memory", got "${persistence}"`)
}
const redisUrl = process.env.BENCH_HUB_REDIS_URL || null
const sharedDataDir = process.env.BENCH_HUB_DATA_DIR || null

// BENCH_HTTP_DATA_DIR picks the disk (the bench passes its environment on): every state
// PATCH commits with synchronous = FULL, so its fsync is part of what a PATCH costs; a
// tmpfs such as /dev/shm takes the disk out of the figures.
const dataDir = sharedDataDir ?? mkdtempSync(join(process.env.BENCH_HTTP_DATA_DIR || tmpdir(), 'metanode-bench-'))
const removeDataDir = (): void => {
  if (sharedDataDir === null) rmSync(dataDir, { recursive: true, force: true })
}
try {
  const hub = await startHub({
    host: '127.0.0.1',
    mqttPort: 0,
    httpPort: 0,
    dataDir,
    logLevel: 'silent',
    clients: { publishesPerSecond: 1_000_000, publishBurst: 1_000_000 },
    http: { rateLimitPerMinute: 1_000_000_000 },
    ...(persistence === undefined ? {} : { brokerPersistence: persistence }),
    ...(redisUrl === null ? {} : { cluster: { redisUrl } }),
  })
  exposeCommitStats(hub)
  serveControl({ mqttPort: hub.mqttPort, httpPort: hub.httpPort, adminToken: hub.adminToken, dataDir, persistence: hub.config.brokerPersistence, cluster: redisUrl !== null }, async () => {
    try {
      await hub.close()
    } finally {
      removeDataDir()
    }
  })
} catch (err) {
  removeDataDir()
  throw err
}

/**
 * The durable persistence's group-commit totals (commits, fsyncs and their time), as a
 * gauge on the hub's /metrics, so that bench/durability.ts can say where a durable message's
 * extra cost goes without a change to the hub. Absent with the in-memory or Redis backends.
 */
function exposeCommitStats (hub: Hub): void {
  const backend = (hub.broker.aedes as unknown as { persistence?: { commitStats?: Readonly<GroupCommitStats> } }).persistence
  if (backend?.commitStats === undefined) return
  new Gauge({
    name: 'bench_broker_commit',
    help: 'Group-commit totals of the broker persistence since it opened (bench only)',
    labelNames: ['stat'],
    registers: [hub.registry],
    collect () {
      for (const [stat, value] of Object.entries(backend.commitStats!)) this.set({ stat }, value)
    },
  })
}
