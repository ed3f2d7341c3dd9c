/**
 * The audit trail of a real hub: who enrolled, revoked, made tokens, changed policies, was
 * refused, or raised a security alert, with a chain that verifies, and that catches a row
 * edited behind the hub's back.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import BetterSqlite3 from 'better-sqlite3'
import { join } from 'node:path'
import { startTestHub, makeKeyPair, tempDir } from '../helpers/hub.js'
import { connectTestDevice } from '../helpers/device.js'

test('enrolments, revocations, tokens, policy changes, refusals and security alerts are audited', async t => {
  const hub = await startTestHub(t)
  const base = `http://127.0.0.1:${hub.httpPort}`
  const admin = (method: string, path: string, body?: unknown) => fetch(base + path, {
    method,
    headers: { authorization: `Bearer ${hub.adminToken}`, ...(body ? { 'content-type': 'application/json' } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  })
  const key = makeKeyPair()
  const enrolled = await (await admin('POST', '/v1/devices', { publicKey: Buffer.from(key.publicKey).toString('hex'), role: 'device' })).json() as { id: string }
  await admin('DELETE', `/v1/devices/${enrolled.id}`)
  const token = await (await admin('POST', '/v1/provisioning-tokens', { role: 'device' })).json() as { id: string, token: string }
  await fetch(`${base}/v1/enroll`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ token: token.token, publicKey: Buffer.from(makeKeyPair().publicKey).toString('hex') }) })
  assert.equal((await admin('POST', '/v1/policies', { id: 'no-stream', match: { path: '/v1/stream' }, action: { type: 'block', reason: 'maintenance' } })).status, 201)
  const blocked = await admin('GET', '/v1/stream')
  assert.equal(blocked.status, 403)
  assert.match((await blocked.json() as { message: string }).message, /maintenance/)

  const device = await connectTestDevice(t, hub)
  await device.up(device.signed({ type: 32, prio: 0, body: { kind: 'tamper', detail: 'lid open' }, ack: true }))
  assert.equal((await device.ackBodies(1))[0].ok, true)

  const entries = await (await admin('GET', '/v1/audit?limit=100')).json() as { items: Array<{ actor: string, action: string, target: string | null }> }
  const actions = entries.items.map(e => e.action)
  for (const action of ['principal.enrol', 'principal.revoke', 'token.create', 'security.alert']) assert.ok(actions.includes(action), `${action} in ${actions.join(', ')}`)
  assert.ok(actions.some(a => a.startsWith('policy.')), 'policy change')
  assert.ok(actions.some(a => a.startsWith('request.')), 'refused request')
  const revoke = entries.items.find(e => e.action === 'principal.revoke')
  assert.equal(revoke?.actor, 'admin')
  assert.equal(revoke?.target, enrolled.id)
  const alert = entries.items.find(e => e.action === 'security.alert')
  assert.equal(alert?.actor, `principal:${device.principal.id}`)
  const verified = await (await admin('GET', '/v1/audit/verify')).json() as { ok: boolean }
  assert.equal(verified.ok, true)
})

test('a row edited behind the hub\'s back is found by verify', async t => {
  const dataDir = tempDir(t)
  const hub = await startTestHub(t, { dataDir })
  const admin = { authorization: `Bearer ${hub.adminToken}`, 'content-type': 'application/json' }
  for (let i = 0; i < 3; i++) {
    await fetch(`http://127.0.0.1:${hub.httpPort}/v1/devices`, { method: 'POST', headers: admin, body: JSON.stringify({ publicKey: Buffer.from(makeKeyPair().publicKey).toString('hex'), role: 'device' }) })
  }
  const tamperer = new BetterSqlite3(join(dataDir, 'metanode.db'))
  tamperer.exec('DROP TRIGGER audit_log_no_update')
  const victim = tamperer.prepare("SELECT seq FROM audit_log WHERE action = 'principal.enrol' ORDER BY seq LIMIT 1 OFFSET 1").get() as { seq: number }
  tamperer.prepare('UPDATE audit_log SET actor = ? WHERE seq = ?').run('principal:someone-else', victim.seq)
  tamperer.close()
  const result = await (await fetch(`http://127.0.0.1:${hub.httpPort}/v1/audit/verify`, { headers: { authorization: admin.authorization } })).json() as { ok: boolean, brokenAt: number }
  assert.equal(result.ok, false)
  assert.equal(result.brokenAt, victim.seq)
  // Repair it so that the helper's end-of-test chain check passes: the point was made.
  const repair = new BetterSqlite3(join(dataDir, 'metanode.db'))
  repair.prepare('UPDATE audit_log SET actor = ? WHERE seq = ?').run('admin', victim.seq)
  repair.close()
})
