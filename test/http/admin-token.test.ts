import assert from 'node:assert/strict'
import { readFile, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { test } from 'node:test'
import { ConfigError } from '../../src/errors.js'
import { loadOrCreateAdminToken, tokenMatches, ADMIN_TOKEN_FILE } from '../../src/http/admin-token.js'
import { captureLogger, tempDir } from './helpers.js'

test('a token is generated on first start, kept with mode 0600, and reused', async (t) => {
  const dataDir = join(await tempDir(t), 'not', 'yet', 'there')
  const { log, lines } = captureLogger()
  const token = await loadOrCreateAdminToken({ dataDir, log })
  assert.match(token, /^[A-Za-z0-9_-]{43}$/) // 32 bytes, base64url
  const file = join(dataDir, ADMIN_TOKEN_FILE)
  assert.equal(await readFile(file, 'utf8'), token)
  assert.equal((await stat(file)).mode & 0o777, 0o600)
  assert.equal((await stat(dataDir)).mode & 0o777, 0o700)
  assert.ok(lines.some((line) => line.includes('admin token created') && line.includes(file)))
  assert.ok(!lines.join('').includes(token))

  const again = await loadOrCreateAdminToken({ dataDir, log })
  assert.equal(again, token)
  assert.ok(lines.some((line) => line.includes('admin token loaded')))
  assert.ok(!lines.join('').includes(token))
})

test('hubs starting at once on one data directory agree on one token', async (t) => {
  const dataDir = await tempDir(t)
  const { log } = captureLogger()
  const tokens = await Promise.all(Array.from({ length: 8 }, () => loadOrCreateAdminToken({ dataDir, log })))
  assert.equal(new Set(tokens).size, 1)
  assert.equal(await readFile(join(dataDir, ADMIN_TOKEN_FILE), 'utf8'), tokens[0])
})

test('a configured token (MN_ADMIN_TOKEN) is used and no file is written', async (t) => {
  const dataDir = await tempDir(t)
  const { log, lines } = captureLogger()
  const configured = 'from-the-environment-0123456789'
  assert.equal(await loadOrCreateAdminToken({ dataDir, token: configured, log }), configured)
  await assert.rejects(stat(join(dataDir, ADMIN_TOKEN_FILE)), { code: 'ENOENT' })
  assert.ok(!lines.join('').includes(configured))
  // It wins over a file kept from an earlier start.
  await writeFile(join(dataDir, ADMIN_TOKEN_FILE), 'the-token-in-the-file-0123', { mode: 0o600 })
  assert.equal(await loadOrCreateAdminToken({ dataDir, token: configured, log }), configured)
  await assert.rejects(loadOrCreateAdminToken({ dataDir, token: 'short', log }), ConfigError)
})

test('a token file edited by hand is trimmed; a broken or exposed one is reported', async (t) => {
  const dataDir = await tempDir(t)
  const file = join(dataDir, ADMIN_TOKEN_FILE)
  const { log, lines } = captureLogger()
  await writeFile(file, 'hand-written-token-0123456789\n', { mode: 0o644 })
  assert.equal(await loadOrCreateAdminToken({ dataDir, log }), 'hand-written-token-0123456789')
  assert.ok(lines.some((line) => line.includes('"level":40') && line.includes('readable by others')))
  await writeFile(file, '\n')
  await assert.rejects(loadOrCreateAdminToken({ dataDir, log }), ConfigError)
})

test('tokenMatches compares exactly', () => {
  const token = 'a-token-of-some-length-0123'
  assert.equal(tokenMatches(token, token), true)
  assert.equal(tokenMatches(token, token + 'x'), false)
  assert.equal(tokenMatches(token, token.slice(0, -1)), false)
  assert.equal(tokenMatches(token, token.toUpperCase()), false)
  assert.equal(tokenMatches(token, ''), false)
  assert.equal(tokenMatches(token, undefined), false)
  assert.equal(tokenMatches(token, null), false)
})
