/**
 * The fleet on one host: three hub processes, one Redis, one data directory (the records in
 * one shared SQLite file, the admin token and node key shared too).
 */
import { join } from 'node:path'
import { tempDir } from '../helpers/hub.js'
import { startHubProcess } from '../helpers/hub-process.js'
import { fleetSuite } from './fleet-suite.js'

fleetSuite(async (suite, redis) => {
  const dataDir = join(tempDir(suite, 'metanode-cluster-'), 'data')
  const args = ['--cluster', redis.url]
  // The first process creates the shared files (database, admin token, node key); the
  // others start once they exist.
  const first = await startHubProcess(suite, { dataDir, args })
  return [first, ...await Promise.all([startHubProcess(suite, { dataDir, args }), startHubProcess(suite, { dataDir, args })])]
})
