/**
 * The hub under test, in its own process so that its CPU time and memory can be read from
 * /proc alone. Per-client publish rate limits are lifted: the bench measures the pipeline,
 * not the limiter.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { startHub } from '../../src/hub.js'
import { serveControl } from './control.js'

const dataDir = mkdtempSync(join(tmpdir(), 'metanode-bench-'))
try {
  const hub = await startHub({
    host: '127.0.0.1',
    mqttPort: 0,
    httpPort: 0,
    dataDir,
    logLevel: 'silent',
    clients: { publishesPerSecond: 1_000_000, publishBurst: 1_000_000 },
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
