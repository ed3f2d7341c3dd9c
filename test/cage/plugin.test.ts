import assert from 'node:assert/strict'
import { test } from 'node:test'
import Fastify from 'fastify'
import swagger from '@fastify/swagger'
import { AuditLog } from '../../src/cage/audit.js'
import { BlockedRequestLog } from '../../src/cage/blocked-log.js'
import { cage as cagePlugin } from '../../src/cage/plugin.js'
import { PolicyStore } from '../../src/cage/policy-store.js'
import { tamper, tempDb } from './helpers.js'
import { DEVICE_ID, startCage, type Answer } from './http-helpers.js'

function assertError (answer: Answer, status: number, code: string, message?: RegExp): void {
  assert.equal(answer.status, status, JSON.stringify(answer.body))
  assert.deepEqual(Object.keys(answer.body).sort(), ['code', 'error', 'message', 'statusCode'])
  assert.equal(answer.body.statusCode, status)
  assert.equal(answer.body.code, code)
  if (message) assert.match(answer.body.message, message)
}

test('each action over HTTP: allow, block 403 with its reason, redirect 307, rate limit 429 with Retry-After', async (t) => {
  const cage = await startCage(t, {
    rules: [
      { id: 'closed', match: { path: '/v1/things/closed' }, action: { type: 'block', reason: 'this thing is closed for maintenance' } },
      { id: 'moved', match: { path: '/v1/things/old' }, action: { type: 'redirect', location: 'https://example.com/new?x=1' } },
      { id: 'limit', match: { path: '/v1/things/*', roles: ['device'] }, action: { type: 'rate_limit', max: 2, windowMs: 60_000, key: 'principal' } },
    ],
  })
  const open = await cage.call('GET', '/v1/things/a', { as: 'anonymous' })
  assert.equal(open.status, 200)
  assert.deepEqual(open.body, { id: 'a' })

  const blocked = await cage.call('GET', '/v1/things/closed', { as: 'device' })
  assertError(blocked, 403, 'MN_ERR_POLICY_BLOCKED', /^this thing is closed for maintenance$/)
  assert.equal(blocked.body.error, 'Forbidden')

  const moved = await cage.call('GET', '/v1/things/old?keep=1')
  assert.equal(moved.status, 307)
  assert.equal(moved.headers.get('location'), 'https://example.com/new?x=1')

  // The device's two requests pass (one above was blocked first, by an earlier rule).
  assert.equal((await cage.call('GET', '/v1/things/b', { as: 'device' })).status, 200)
  assert.equal((await cage.call('GET', '/v1/things/c', { as: 'device' })).status, 200)
  const limited = await cage.call('GET', '/v1/things/d', { as: 'device' })
  assertError(limited, 429, 'MN_ERR_RATE_LIMITED', /at most 2 requests per 60000 ms; retry after \d+ s/)
  const retryAfterS = Number(limited.headers.get('retry-after'))
  assert.ok(retryAfterS >= 1 && retryAfterS <= 60, `Retry-After: ${retryAfterS}`)
  // Other callers are not affected by the device's limit.
  assert.equal((await cage.call('GET', '/v1/things/d', { as: 'service' })).status, 200)
})

test('a blocked request is refused before its body is read', async (t) => {
  const cage = await startCage(t, { rules: [{ match: { methods: ['POST'], path: '/v1/things' }, action: { type: 'block', reason: 'read-only' } }] })
  // Larger than the body limit and not JSON either: a 403, not a 413 or 400.
  const answer = await cage.call('POST', '/v1/things', { as: 'device', body: 'x'.repeat(10_000) })
  assertError(answer, 403, 'MN_ERR_POLICY_BLOCKED', /read-only/)
})

test('rules apply to unknown routes and to every spelling of a path', async (t) => {
  const cage = await startCage(t, { rules: [{ match: { path: '/v1/**' }, action: { type: 'block', reason: 'api closed' } }] })
  assert.equal((await cage.call('GET', '/v1/nothing/here')).status, 403)
  assert.equal((await cage.call('GET', '/%761/things/a')).status, 403)
  assert.equal((await cage.call('GET', '/v1/things/a/')).status, 403)
  assert.equal((await cage.call('GET', '/open')).status, 200)
  assert.equal((await cage.call('GET', '/nothing')).status, 404)
})

test('the policy runs before the guards of route plugins registered after it, so defaults limit anonymous probing', async (t) => {
  const cage = await startCage(t, { seedDefaults: true })
  assert.equal((await cage.call('GET', '/v1/guarded')).status, 200)
  const statuses: number[] = []
  for (let i = 0; i < 121; i++) statuses.push((await cage.call('GET', '/v1/guarded', { as: 'anonymous' })).status)
  assert.deepEqual(statuses.slice(0, 120), Array(120).fill(401))
  const limited = await cage.call('GET', '/v1/guarded', { as: 'anonymous' })
  assertError(limited, 429, 'MN_ERR_RATE_LIMITED')
  assert.ok(Number(limited.headers.get('retry-after')) >= 1)
  for (let i = 0; i < 200; i++) assert.equal((await cage.call('GET', '/healthz', { as: 'anonymous' })).status, 200)
  assert.equal((await cage.call('GET', '/v1/guarded')).status, 200, 'the admin is not limited')
})

test('IPv4 clients of a dual-stack listener (IPv4-mapped IPv6) match IPv4 prefixes', async (t) => {
  let cage
  try {
    cage = await startCage(t, { host: '::', rules: [{ match: { cidrs: ['127.0.0.0/8'], path: '/open' }, action: { type: 'block', reason: 'loopback' } }] })
  } catch (err) {
    t.skip(`no IPv6 here: ${(err as Error).message}`)
    return
  }
  const answer = await cage.call('GET', '/open', { as: 'anonymous' })
  assertError(answer, 403, 'MN_ERR_POLICY_BLOCKED', /loopback/)
  const [entry] = await cage.audit.list({ limit: 1, action: 'request.blocked' })
  assert.equal(entry.source, '::ffff:127.0.0.1')
})

test('headers and roles over HTTP', async (t) => {
  const cage = await startCage(t, {
    rules: [
      { match: { headers: { 'user-agent': '/^BadBot/' } }, action: { type: 'block', reason: 'no bots' } },
      { match: { roles: ['anonymous'], path: '/v1/things/*' }, action: { type: 'block', reason: 'sign in first' } },
      { match: { principals: [DEVICE_ID], methods: ['POST'] }, action: { type: 'block', reason: 'this device may not write' } },
    ],
  })
  assertError(await cage.call('GET', '/open', { headers: { 'user-agent': 'BadBot/1.0' } }), 403, 'MN_ERR_POLICY_BLOCKED', /no bots/)
  assert.equal((await cage.call('GET', '/open', { headers: { 'user-agent': 'GoodBot/1.0' } })).status, 200)
  assertError(await cage.call('GET', '/v1/things/x', { as: 'anonymous' }), 403, 'MN_ERR_POLICY_BLOCKED', /sign in first/)
  assert.equal((await cage.call('GET', '/v1/things/x', { as: 'service' })).status, 200)
  assertError(await cage.call('POST', '/v1/things', { as: 'device', body: {} }), 403, 'MN_ERR_POLICY_BLOCKED', /may not write/)
  assert.equal((await cage.call('POST', '/v1/things', { as: 'service', body: { a: 1 } })).status, 200)
})

test('the policy routes need the admin: 401 anonymous, 403 principals, before the body is read', async (t) => {
  const cage = await startCage(t)
  for (const [method, path] of [['GET', '/v1/policies'], ['PUT', '/v1/policies'], ['POST', '/v1/policies'], ['GET', '/v1/policies/x'],
    ['PATCH', '/v1/policies/x'], ['DELETE', '/v1/policies/x'], ['GET', '/v1/audit'], ['GET', '/v1/audit/verify']]) {
    const body = method === 'GET' || method === 'DELETE' ? undefined : '{not json'
    const anonymous = await cage.call(method, path, { as: 'anonymous', body })
    assertError(anonymous, 401, 'MN_ERR_UNAUTHORIZED')
    assert.match(anonymous.headers.get('www-authenticate') ?? '', /^Bearer/)
    assertError(await cage.call(method, path, { as: 'device', body }), 403, 'MN_ERR_FORBIDDEN')
  }
})

test('rule changes through the API take effect at once, without a restart', async (t) => {
  const cage = await startCage(t)
  assert.deepEqual((await cage.call('GET', '/v1/policies')).body, { rules: [] })
  assert.equal((await cage.call('GET', '/open', { as: 'device' })).status, 200)

  const created = await cage.call('POST', '/v1/policies', { body: { id: 'no-open', description: 'closed', match: { path: '/open' }, action: { type: 'block', reason: 'closed now' } } })
  assert.equal(created.status, 201)
  assert.equal(created.headers.get('location'), '/v1/policies/no-open')
  assert.deepEqual(Object.keys(created.body).sort(), ['action', 'created', 'description', 'id', 'match', 'position', 'updated'])
  assert.equal(created.body.position, 1)
  assertError(await cage.call('GET', '/open', { as: 'device' }), 403, 'MN_ERR_POLICY_BLOCKED', /closed now/)

  const first = await cage.call('POST', '/v1/policies', { body: { id: 'devices-ok', match: { roles: ['device'] }, action: { type: 'allow' }, position: 1 } })
  assert.equal(first.body.position, 1)
  assert.equal((await cage.call('GET', '/open', { as: 'device' })).status, 200)
  assert.equal((await cage.call('GET', '/open', { as: 'service' })).status, 403)

  const patched = await cage.call('PATCH', '/v1/policies/no-open', { body: { action: { type: 'redirect', location: 'http://example.org/' } } })
  assert.equal(patched.status, 200)
  assert.deepEqual(patched.body.action, { type: 'redirect', location: 'http://example.org/' })
  assert.equal((await cage.call('GET', '/open', { as: 'service' })).status, 307)

  const got = await cage.call('GET', '/v1/policies/no-open')
  assert.deepEqual(got.body, patched.body)
  const removed = await cage.call('DELETE', '/v1/policies/no-open')
  assert.equal(removed.status, 200)
  assert.equal(removed.body.id, 'no-open')
  assert.equal((await cage.call('GET', '/open', { as: 'service' })).status, 200)
  assertError(await cage.call('GET', '/v1/policies/no-open'), 404, 'MN_ERR_NOT_FOUND', /no policy rule with id "no-open"/)
  assertError(await cage.call('DELETE', '/v1/policies/no-open'), 404, 'MN_ERR_NOT_FOUND')
  assertError(await cage.call('PATCH', '/v1/policies/no-open', { body: { position: 1 } }), 404, 'MN_ERR_NOT_FOUND')
  assertError(await cage.call('POST', '/v1/policies', { body: { id: 'devices-ok', match: {}, action: { type: 'allow' } } }), 409, 'MN_ERR_CONFLICT')
})

test('a bad rule is refused with a clear 400 and the old set stays in force', async (t) => {
  const cage = await startCage(t, { rules: [{ id: 'closed', match: { path: '/open' }, action: { type: 'block', reason: 'closed' } }] })
  const before = (await cage.call('GET', '/v1/policies')).body
  const cases: Array<[string, string, unknown, string, RegExp]> = [
    ['POST', '/v1/policies', { match: { cidrs: ['10.0.0.1/8'] }, action: { type: 'allow' } }, 'MN_ERR_POLICY_INVALID', /^body\.match\.cidrs\.0 "10\.0\.0\.1\/8" has bits set below its \/8 prefix; did you mean "10\.0\.0\.0\/8"\?$/],
    ['POST', '/v1/policies', { match: {}, action: { type: 'block' } }, 'MN_ERR_POLICY_INVALID', /^body\.action\.reason is required$/],
    ['POST', '/v1/policies', { match: { path: '/a/**/b' }, action: { type: 'allow' } }, 'MN_ERR_POLICY_INVALID', /^body\.match\.path may use "\*\*" only as its last segment$/],
    ['POST', '/v1/policies', { match: { headers: { 'x-a': '/(/' } }, action: { type: 'allow' } }, 'MN_ERR_POLICY_INVALID', /^body\.match\.headers\.x-a is not a valid regular expression/],
    ['POST', '/v1/policies', { match: {}, action: { type: 'redirect', location: 'ftp://x' } }, 'MN_ERR_POLICY_INVALID', /^body\.action\.location must be an http or https URL/],
    ['POST', '/v1/policies', { match: { verb: 'GET' }, action: { type: 'allow' } }, 'MN_ERR_BAD_REQUEST', /^body\.match has an unknown property "verb"$/],
    ['POST', '/v1/policies', { match: {}, action: { type: 'deny' } }, 'MN_ERR_BAD_REQUEST', /^body\.action\.type must be one of allow, block, redirect, rate_limit$/],
    ['POST', '/v1/policies', { match: {}, action: { type: 'rate_limit', max: '5', windowMs: 1000, key: 'address' } }, 'MN_ERR_BAD_REQUEST', /^body\.action\.max must be integer$/],
    ['POST', '/v1/policies', { match: {}, action: { type: 'allow' }, position: 9 }, 'MN_ERR_POLICY_INVALID', /^body\.position must be an integer from 1 to 2, got 9$/],
    ['PUT', '/v1/policies', { rules: [{ match: {}, action: { type: 'allow' } }, { match: { roles: ['root'] }, action: { type: 'allow' } }] }, 'MN_ERR_BAD_REQUEST', /^body\.rules\.1\.match\.roles\.0 must be one of admin, device, service, node, anonymous$/],
    ['PUT', '/v1/policies', { rules: [{ match: {}, action: { type: 'allow' } }, { match: { methods: ['get'] }, action: { type: 'allow' } }] }, 'MN_ERR_POLICY_INVALID', /^body\.rules\.1\.match\.methods\.0 must be an HTTP method, got "get" \(methods are written in upper case: "GET"\)$/],
    ['PUT', '/v1/policies', { rules: {} }, 'MN_ERR_BAD_REQUEST', /^body\.rules must be array$/],
    ['PUT', '/v1/policies', [], 'MN_ERR_BAD_REQUEST', /^body must be object$/],
    ['PATCH', '/v1/policies/closed', {}, 'MN_ERR_BAD_REQUEST', /^body must NOT have fewer than 1 properties$/],
    ['PATCH', '/v1/policies/closed', { action: { type: 'allow', reason: 'x' } }, 'MN_ERR_POLICY_INVALID', /^body\.action has an unknown property "reason"; "allow" actions have only type$/],
  ]
  for (const [method, path, body, code, message] of cases) {
    const answer = await cage.call(method, path, { body })
    assertError(answer, 400, code, message)
  }
  assert.deepEqual((await cage.call('GET', '/v1/policies')).body, before)
  assert.equal((await cage.call('GET', '/open', { as: 'device' })).status, 403)
  assert.equal((await cage.audit.list({ limit: 100, action: 'policy.*' })).length, 1, 'only the set-up is in the log')
})

test('PUT replaces the whole set atomically', async (t) => {
  const cage = await startCage(t, { rules: [{ id: 'closed', match: { path: '/open' }, action: { type: 'block', reason: 'closed' } }] })
  const put = await cage.call('PUT', '/v1/policies', {
    body: { rules: [{ id: 'one', match: { path: '/v1/things/one' }, action: { type: 'block', reason: 'one' } }, { match: { path: '/healthz' }, action: { type: 'allow' } }] },
  })
  assert.equal(put.status, 200)
  assert.deepEqual(put.body.rules.map((rule: { id: string, position: number }) => [rule.position, rule.id.startsWith('rule-') ? 'generated' : rule.id]), [[1, 'one'], [2, 'generated']])
  assert.equal((await cage.call('GET', '/open')).status, 200, 'the old rule is gone')
  assert.equal((await cage.call('GET', '/v1/things/one')).status, 403, 'the new rule is in force')
  const empty = await cage.call('PUT', '/v1/policies', { body: { rules: [] } })
  assert.deepEqual(empty.body, { rules: [] })
  assert.equal((await cage.call('GET', '/v1/things/one')).status, 200)
})

test('the admin reaches the policy and audit routes whatever the rules say', async (t) => {
  const cage = await startCage(t, { rules: [{ id: 'lockout', match: {}, action: { type: 'block', reason: 'everything is closed' } }] })
  assert.equal((await cage.call('GET', '/open')).status, 403, 'the admin is subject to rules elsewhere')
  assert.equal((await cage.call('GET', '/v1/policies', { as: 'device' })).status, 403)
  assertError(await cage.call('GET', '/v1/policies', { as: 'anonymous' }), 403, 'MN_ERR_POLICY_BLOCKED', /everything is closed/)
  assert.equal((await cage.call('GET', '/v1/policies')).status, 200)
  assert.equal((await cage.call('GET', '/v1/audit')).status, 200)
  assert.equal((await cage.call('GET', '/v1/nothing')).status, 403, 'unknown routes are no way around it')
  assert.equal((await cage.call('DELETE', '/v1/policies/lockout')).status, 200)
  assert.equal((await cage.call('GET', '/open')).status, 200)
})

test('policy changes and refused requests are in the audit log with who, what, when and where', async (t) => {
  const cage = await startCage(t, { blockedLog: { perKeyMax: 3 } })
  const before = Date.now()
  await cage.call('POST', '/v1/policies', { body: { id: 'closed', match: { path: '/open' }, action: { type: 'block', reason: 'closed' } } })
  await cage.call('POST', '/v1/policies', { body: { id: 'limit', match: { path: '/v1/things/*' }, action: { type: 'rate_limit', max: 1, windowMs: 60_000, key: 'address' } } })
  await cage.call('PATCH', '/v1/policies/closed', { body: { position: 2 } })
  await cage.call('DELETE', '/v1/policies/limit')
  await cage.call('PUT', '/v1/policies', { body: { rules: [{ id: 'closed', match: { path: '/open' }, action: { type: 'block', reason: 'closed' } }, { id: 'limit', match: { path: '/v1/things/*' }, action: { type: 'rate_limit', max: 1, windowMs: 60_000, key: 'address' } }] } })
  const changes = (await cage.call('GET', '/v1/audit?action=policy.*')).body.items
  assert.deepEqual(changes.map((entry: { action: string }) => entry.action), ['policy.create', 'policy.create', 'policy.update', 'policy.delete', 'policy.replace'])
  const [create] = changes
  assert.equal(create.actor, 'admin')
  assert.equal(create.source, '127.0.0.1')
  assert.equal(create.target, 'closed')
  assert.ok(create.ts >= before && create.ts <= Date.now())
  assert.deepEqual(create.detail.rule, { id: 'closed', match: { path: '/open' }, action: { type: 'block', reason: 'closed' } })

  for (let i = 0; i < 10; i++) await cage.call('GET', '/open?token=secret', { as: 'device' })
  await cage.call('GET', '/v1/things/a', { as: 'anonymous' })
  await cage.call('GET', '/v1/things/b', { as: 'anonymous' })
  const blocked = (await cage.call('GET', '/v1/audit?action=request.blocked')).body.items
  assert.equal(blocked.length, 3, 'at most perKeyMax a minute for one client and rule')
  assert.equal(blocked[0].actor, `principal:${DEVICE_ID}`)
  assert.equal(blocked[0].target, '/open', 'the path without its query')
  assert.equal(blocked[0].source, '127.0.0.1')
  assert.deepEqual(blocked[0].detail, { method: 'GET', rule: 'closed', reason: 'closed', status: 403 })
  const limited = (await cage.call('GET', '/v1/audit?action=request.rate_limited')).body.items
  assert.equal(limited.length, 1)
  assert.equal(limited[0].actor, 'anonymous')
  assert.equal(limited[0].target, '/v1/things/b')
  assert.equal(limited[0].detail.rule, 'limit')
  assert.equal(limited[0].detail.status, 429)

  // Closing writes the summary of what was left out.
  await cage.app.close()
  const [summary] = await cage.audit.list({ limit: 1, action: 'request.suppressed' })
  assert.equal(summary.detail.suppressed, 7)
  assert.deepEqual((await cage.audit.verify()).ok, true)
})

test('GET /v1/audit filters and pages with a keyset cursor, both ways', async (t) => {
  const cage = await startCage(t)
  for (let i = 0; i < 7; i++) await cage.audit.append({ actor: i % 2 === 0 ? 'admin' : 'hub', action: i < 4 ? 'principal.enrol' : 'token.create', target: `t${i}`, source: '10.0.0.1', nowMs: 1_000 + i })
  const page1 = (await cage.call('GET', '/v1/audit?limit=3')).body
  assert.deepEqual(page1.items.map((e: { seq: number }) => e.seq), [1, 2, 3])
  assert.equal(page1.next, 3)
  assert.deepEqual(Object.keys(page1.items[0]).sort(), ['action', 'actor', 'detail', 'hash', 'prevHash', 'seq', 'source', 'target', 'ts'])
  const page3 = (await cage.call('GET', '/v1/audit?limit=3&after=6')).body
  assert.deepEqual(page3.items.map((e: { seq: number }) => e.seq), [7])
  assert.equal(page3.next, null)
  const desc = (await cage.call('GET', '/v1/audit?limit=2&order=desc')).body
  assert.deepEqual(desc.items.map((e: { seq: number }) => e.seq), [7, 6])
  const desc2 = (await cage.call(`GET`, `/v1/audit?limit=2&order=desc&before=${desc.next}`)).body
  assert.deepEqual(desc2.items.map((e: { seq: number }) => e.seq), [5, 4])
  const seqs = async (query: string) => (await cage.call('GET', `/v1/audit?${query}`)).body.items.map((e: { seq: number }) => e.seq)
  assert.deepEqual(await seqs('action=token.create'), [5, 6, 7])
  assert.deepEqual(await seqs('action=token.*&actor=admin'), [5, 7])
  assert.deepEqual(await seqs('target=t2'), [3])
  assert.deepEqual(await seqs('since=1002&until=1005'), [3, 4, 5])
  assert.deepEqual(await seqs('actor=nobody'), [])
  assert.deepEqual(await seqs('limit=1000'), [1, 2, 3, 4, 5, 6, 7])
  for (const [query, message] of [
    ['limit=0', /querystring\.limit must be an integer from 1 to 1000|querystring\.limit must match/],
    ['limit=abc', /querystring\.limit/],
    ['after=-1', /querystring\.after must match pattern/],
    ['order=up', /querystring\.order must be one of asc, desc/],
    ['action=Policy', /querystring\.action must match pattern/],
    ['colour=red', /querystring has an unknown property "colour"/],
  ] as const) {
    assertError(await cage.call('GET', `/v1/audit?${query}`), 400, 'MN_ERR_BAD_REQUEST', message)
  }
})

test('GET /v1/audit/verify reports ok with the head, then the first broken entry after a tamper', async (t) => {
  const cage = await startCage(t)
  for (let i = 0; i < 5; i++) await cage.audit.append({ actor: 'admin', action: 'principal.enrol', target: `t${i}`, detail: { i } })
  const ok = await cage.call('GET', '/v1/audit/verify')
  assert.equal(ok.status, 200)
  assert.deepEqual(ok.body, { ok: true, entries: 5, head: await cage.audit.head() })
  const anchor = (await cage.audit.head())!
  assert.equal((await cage.call('GET', `/v1/audit/verify?anchorSeq=${anchor.seq}&anchorHash=${anchor.hash}`)).body.ok, true)
  assertError(await cage.call('GET', `/v1/audit/verify?anchorSeq=${anchor.seq}`), 400, 'MN_ERR_BAD_REQUEST')

  await tamper(cage.sql, 'UPDATE audit_log SET detail = ? WHERE seq = 3', '{"i":"rewritten"}')
  const broken = await cage.call('GET', '/v1/audit/verify')
  assert.equal(broken.status, 200)
  assert.deepEqual(broken.body, { ok: false, brokenAt: 3, reason: 'hash does not match the entry\'s fields: the entry was altered after it was written', entries: 2 })
})

test('a recorder of refused requests can be shared: the plugin uses it and leaves closing it to its owner', async (t) => {
  let shared: BlockedRequestLog | undefined
  const cage = await startCage(t, {
    rules: [{ id: 'closed', match: { path: '/open' }, action: { type: 'block', reason: 'closed' } }],
    blockedRequests: audit => (shared = new BlockedRequestLog({ audit, perKeyMax: 1 })),
  })
  // What another hook (the identity hook's 401s, say) records counts against the same bounds.
  shared!.record({ key: 'elsewhere', actor: 'anonymous', action: 'request.unauthorized', target: '/v1/devices', source: '127.0.0.1' })
  for (let i = 0; i < 3; i++) await cage.call('GET', '/open', { as: 'device' })
  assert.equal((await cage.audit.list({ limit: 10, action: 'request.*' })).length, 2)
  await cage.app.close()
  assert.equal((await cage.audit.list({ limit: 10, action: 'request.suppressed' })).length, 0, 'not closed by the plugin')
  await shared!.close()
  assert.equal((await cage.audit.list({ limit: 10, action: 'request.suppressed' }))[0].detail.suppressed, 2)
})

test('the routes fit the hub\'s OpenAPI document (@fastify/swagger)', async (t) => {
  const { sql } = await tempDb(t)
  const audit = new AuditLog(sql)
  const policies = await PolicyStore.open(sql, { audit })
  t.after(() => policies.close())
  const app = Fastify({ ajv: { customOptions: { coerceTypes: false, removeAdditional: false, allErrors: false } } })
  t.after(() => app.close())
  app.decorateRequest('identity', null as never)
  await app.register(swagger, { openapi: { info: { title: 'test', version: '1' } } })
  await app.register(cagePlugin, { policies, audit })
  await app.ready()
  const paths = (app.swagger() as { paths: Record<string, Record<string, { tags?: string[] }>> }).paths
  assert.deepEqual(Object.keys(paths).sort(), ['/v1/audit', '/v1/audit/verify', '/v1/policies', '/v1/policies/{id}'])
  assert.deepEqual(Object.keys(paths['/v1/policies/{id}']).sort(), ['delete', 'get', 'patch'])
  assert.deepEqual(paths['/v1/audit'].get.tags, ['audit'])
})
