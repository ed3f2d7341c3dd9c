/**
 * The hub under test, in its own process so that its CPU time and memory can be read from
 * /proc alone. Rate limits are lifted (MQTT publishes per client, HTTP requests per
 * principal): the benches measure the pipeline and the gateway, not the limiters, which
 * still run and count.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { startHub } from '../../src/hub.js'
import { serveControl } from './control.js'

// BENCH_HTTP_DATA_DIR picks the disk (the bench passes its environment on): every state
// PATCH commits with synchronous = FULL, so its fsync is part of what a PATCH costs; a
// tmpfs such as /dev/shm takes the disk out of the figures.
const dataDir = mkdtempSync(join(process.env.BENCH_HTTP_DATA_DIR || tmpdir(), 'metanode-bench-'))
try {
  const hub = await startHub({
    host: '127.0.0.1',
    mqttPort: 0,
    httpPort: 0,
    dataDir,
    logLevel: 'silent',
    clients: { publishesPerSecond: 1_000_000, publishBurst: 1_000_000 },
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
