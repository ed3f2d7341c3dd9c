/**
 * The hub under the HTTP benchmark, in its own process so that its CPU time can be read
 * from /proc alone. The gateway's per-principal rate limit (@fastify/rate-limit, 1,200 a
 * minute by default) is lifted, as hub-server.ts lifts the MQTT publish limits: the bench
 * measures the request path, not the limiter's refusals. The limiter still runs and counts
 * every principal-signed request, as it does in production.
 *
 * The database goes in a fresh directory under BENCH_HTTP_DATA_DIR (the bench passes its
 * environment on), or the system's temporary directory: a real disk by default, since every
 * PATCH commits with synchronous = FULL and its fsync is part of what a PATCH costs; a
 * tmpfs (/dev/shm) takes the disk out of the figures.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { startHub } from '../../src/hub.js'
import { serveControl } from '../servers/control.js'

const dataDir = mkdtempSync(join(process.env.BENCH_HTTP_DATA_DIR || tmpdir(), 'metanode-bench-http-'))
try {
  const hub = await startHub({
    host: '127.0.0.1',
    mqttPort: 0,
    httpPort: 0,
    dataDir,
    logLevel: 'silent',
    http: { rateLimitPerMinute: 1_000_000_000 },
  })
  serveControl({ mqttPort: hub.mqttPort, httpPort: hub.httpPort, adminToken: hub.adminToken }, async () => {
    try {
      await hub.close()
    } finally {
      rmSync(dataDir, { recursive: true, force: true })
    }
  })
} catch (err) {
  rmSync(dataDir, { recursive: true, force: true })
  throw err
}
