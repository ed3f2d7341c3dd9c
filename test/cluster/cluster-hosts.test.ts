/**
 * The fleet as on three hosts: three hub processes that share nothing on disk (a data
 * directory each, so a node key each), only Redis and one PostgreSQL database, and an admin
 * token handed to each by the operator (MN_ADMIN_TOKEN), as a deployment would.
 */
import { randomBytes } from 'node:crypto'
import { tempDir } from '../helpers/hub.js'
import { startHubProcess } from '../helpers/hub-process.js'
import { postgresEngine, testPostgres } from '../helpers/sql-engines.js'
import { fleetSuite } from './fleet-suite.js'

fleetSuite(async (suite, redis) => {
  const databaseUrl = await (await testPostgres()).createDatabase()
  const env = { MN_ADMIN_TOKEN: randomBytes(32).toString('base64url'), MN_DATABASE_URL: databaseUrl }
  const args = ['--cluster', redis.url]
  const start = () => startHubProcess(suite, { dataDir: tempDir(suite, 'metanode-host-'), args, env })
  return Promise.all([start(), start(), start()])
}, postgresEngine.skip)
