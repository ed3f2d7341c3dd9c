/**
 * copy-records: a hub's records moved from its SQLite file into PostgreSQL, as a fleet that
 * outgrows one host does, then served by a hub on PostgreSQL exactly as before.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { connackCode, enrollPrincipal, mqttUrl, principalOptions, startTestHub, tempDir } from '../helpers/hub.js'
import { postgresEngine, testPostgres } from '../helpers/sql-engines.js'
import { RECORD_TABLES } from '../../src/store/copy-records.js'

const execFileAsync = promisify(execFile)

async function copyRecords (dataDir: string, url: string): Promise<{ code: number, stdout: string, stderr: string }> {
  try {
    const { stdout, stderr } = await execFileAsync(process.execPath, ['--import', 'tsx', 'src/cli.ts', 'copy-records', '--data-dir', dataDir], { env: { ...process.env, MN_DATABASE_URL: url }, timeout: 60_000 })
    return { code: 0, stdout, stderr }
  } catch (err) {
    const failed = err as { code: number, stdout: string, stderr: string }
    return { code: failed.code, stdout: failed.stdout, stderr: failed.stderr }
  }
}

test('the records of a stopped SQLite hub, copied into PostgreSQL, are served by a hub there as they were', { skip: postgresEngine.skip, timeout: 120_000 }, async t => {
  const dataDir = tempDir(t)
  const adminToken = 'copy-records-test-admin-token-0123456789'
  const before = await startTestHub(t, { dataDir, adminToken })
  const device = await enrollPrincipal(before)
  const revoked = await enrollPrincipal(before, 'service')
  const admin = { authorization: `Bearer ${adminToken}`, 'content-type': 'application/json' }
  const call = async (hub: { httpPort: number }, method: string, path: string, body?: unknown) => {
    const res = await fetch(`http://127.0.0.1:${hub.httpPort}${path}`, { method, headers: admin, body: body === undefined ? undefined : JSON.stringify(body) })
    return { status: res.status, body: await res.json() as Record<string, unknown> }
  }
  assert.equal((await call(before, 'DELETE', `/v1/devices/${revoked.id}`)).status, 200)
  assert.equal((await call(before, 'POST', '/v1/provisioning-tokens', { role: 'device', usesMax: 2, expiresInMs: 3_600_000 })).status, 201)
  assert.equal((await call(before, 'POST', '/v1/policies', { id: 'no-x', match: { path: '/x' }, action: { type: 'block', reason: 'no' } })).status, 201)
  await before.state.report(device.id, { fan: { speed: 2 }, label: 'büro' })
  const devices = (await call(before, 'GET', '/v1/devices')).body
  const state = (await call(before, 'GET', `/v1/devices/${device.id}/state`)).body
  const policies = (await call(before, 'GET', '/v1/policies')).body
  const tokens = (await call(before, 'GET', '/v1/provisioning-tokens')).body
  await before.close()

  const url = await (await testPostgres()).createDatabase()
  const copied = await copyRecords(dataDir, url)
  assert.equal(copied.code, 0, copied.stderr)
  assert.match(copied.stdout, /^principals: 2 rows$/m)
  assert.match(copied.stdout, /^audit chain verified: \d+ entries, head [0-9a-f]{64}$/m)
  for (const table of RECORD_TABLES) assert.match(copied.stdout, new RegExp(`^${table}: \\d+ rows$`, 'm'))

  const again = await copyRecords(dataDir, url)
  assert.equal(again.code, 1, 'a second copy into the same database is refused')
  assert.match(again.stderr, /already holds records/)

  const after = await startTestHub(t, { dataDir: tempDir(t), adminToken, databaseUrl: url })
  assert.deepEqual((await call(after, 'GET', '/v1/devices')).body, devices)
  assert.deepEqual((await call(after, 'GET', `/v1/devices/${device.id}/state`)).body, state)
  assert.deepEqual((await call(after, 'GET', '/v1/policies')).body, policies)
  assert.deepEqual((await call(after, 'GET', '/v1/provisioning-tokens')).body, tokens)
  assert.equal((await call(after, 'GET', '/v1/audit/verify')).body.ok, true)
  assert.equal(await connackCode(t, mqttUrl(after), principalOptions(device)), 0, 'the device connects to the hub on PostgreSQL')
  assert.equal(await connackCode(t, mqttUrl(after), principalOptions(revoked)), 5, 'the revocation came along')
})

test('copy-records refuses without a database URL, and a file that is not a hub\'s', async t => {
  const missingUrl = await execFileAsync(process.execPath, ['--import', 'tsx', 'src/cli.ts', 'copy-records', '--data-dir', tempDir(t)], { env: { ...process.env, MN_DATABASE_URL: '' } }).then(() => null, (err: { code: number, stderr: string }) => err)
  assert.equal(missingUrl?.code, 1)
  assert.match(missingUrl?.stderr ?? '', /needs --database/)
  if (postgresEngine.skip) return
  const url = await (await testPostgres()).createDatabase()
  const noFile = await copyRecords(join(tempDir(t), 'nothing-here'), url)
  assert.equal(noFile.code, 1)
})
