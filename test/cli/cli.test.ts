/**
 * The `metanode` command as a user runs it: a real hub process started with the flags of
 * protocol-v1 §9, keygen, enroll, devices, and a clean exit on SIGTERM and SIGINT.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawn, execFile } from 'node:child_process'
import { once } from 'node:events'
import { readFileSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { createInterface } from 'node:readline'
import { tempDir } from '../helpers/hub.js'

const execFileAsync = promisify(execFile)
const CLI = ['--import', 'tsx', 'src/cli.ts']

async function cli (...args: string[]): Promise<{ stdout: string, stderr: string }> {
  return execFileAsync(process.execPath, [...CLI, ...args], { timeout: 30_000 })
}

async function startHubProcess (t: Parameters<typeof tempDir>[0], dataDir: string) {
  const child = spawn(process.execPath, [...CLI, 'start', '--host', '127.0.0.1', '--mqtt-port', '0', '--http-port', '0', '--data-dir', dataDir], { stdio: ['ignore', 'pipe', 'inherit'] })
  t.after(() => { if (child.exitCode === null) child.kill('SIGKILL') })
  const lines = createInterface({ input: child.stdout! })
  for await (const line of lines) {
    const entry = JSON.parse(line) as { msg: string, mqttPort?: number, httpPort?: number }
    if (entry.msg === 'hub accepting connections') return { child, mqttPort: entry.mqttPort!, httpPort: entry.httpPort! }
  }
  throw new Error('the hub exited before accepting connections')
}

test('start, keygen, enroll, devices list/get/revoke, then SIGTERM exits 0', async t => {
  const dir = tempDir(t)
  const dataDir = join(dir, 'data')
  const hub = await startHubProcess(t, dataDir)
  const url = `http://127.0.0.1:${hub.httpPort}`
  assert.equal((await fetch(`${url}/healthz`)).status, 200)
  assert.equal(statSync(join(dataDir, 'admin-token')).mode & 0o777, 0o600)

  const keyFile = join(dir, 'device-key.json')
  const keygen = await cli('keygen', '--out', keyFile)
  const key = JSON.parse(readFileSync(keyFile, 'utf8')) as { id: string, publicKey: string, secretKey: string }
  assert.match(keygen.stdout, new RegExp(key.id))
  assert.equal(statSync(keyFile).mode & 0o777, 0o600)
  await assert.rejects(cli('keygen', '--out', keyFile), /refusing to overwrite/)

  const enrolled = JSON.parse((await cli('enroll', '--key', keyFile, '--name', 'bench-1', '--url', url, '--data-dir', dataDir)).stdout) as { id: string, role: string }
  assert.equal(enrolled.id, key.id)
  assert.equal(enrolled.role, 'device')
  await assert.rejects(cli('enroll', '--key', keyFile, '--url', url, '--data-dir', dataDir), /409/)

  const list = (await cli('devices', '--url', url, '--data-dir', dataDir)).stdout
  assert.match(list, new RegExp(`${key.id}\\s+device\\s+active\\s+bench-1`))
  const got = JSON.parse((await cli('devices', 'get', key.id, '--url', url, '--data-dir', dataDir)).stdout) as { revoked: number | null }
  assert.equal(got.revoked, null)
  const revoked = JSON.parse((await cli('devices', 'revoke', key.id, '--url', url, '--data-dir', dataDir)).stdout) as { revoked: number | null }
  assert.equal(typeof revoked.revoked, 'number')
  await assert.rejects(cli('devices', '--url', url, '--token', 'wrong-token-wrong-token'), /401/)

  hub.child.kill('SIGTERM')
  const [code] = await once(hub.child, 'exit')
  assert.equal(code, 0)
})

test('SIGINT closes the hub cleanly and a restart on the same data dir keeps its principals', async t => {
  const dir = tempDir(t)
  const dataDir = join(dir, 'data')
  const first = await startHubProcess(t, dataDir)
  const keyFile = join(dir, 'k.json')
  await cli('keygen', '--out', keyFile)
  await cli('enroll', '--key', keyFile, '--url', `http://127.0.0.1:${first.httpPort}`, '--data-dir', dataDir)
  first.child.kill('SIGINT')
  assert.equal((await once(first.child, 'exit'))[0], 0)

  const second = await startHubProcess(t, dataDir)
  const list = (await cli('devices', '--url', `http://127.0.0.1:${second.httpPort}`, '--data-dir', dataDir)).stdout
  const { id } = JSON.parse(readFileSync(keyFile, 'utf8')) as { id: string }
  assert.match(list, new RegExp(id))
  second.child.kill('SIGTERM')
  assert.equal((await once(second.child, 'exit'))[0], 0)
})

test('an unknown command or flag fails with usage', async () => {
  await assert.rejects(cli('frobnicate'), /unknown command/)
  await assert.rejects(cli('start', '--no-such-flag'), /no-such-flag/)
})
