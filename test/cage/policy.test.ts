import assert from 'node:assert/strict'
import { test } from 'node:test'
import type { IncomingHttpHeaders } from 'node:http'
import {
  CompiledPolicy, DEFAULT_RULES, RateLimitState, validateRule, validateRuleSet, type Decision, type Rule, type RuleSpec,
} from '../../src/cage/policy.js'
import { PolicyValidationError } from '../../src/cage/errors.js'
import type { Identity } from '../../src/cage/identity.js'

const DEVICE_ID = 'a'.repeat(32)
const OTHER_ID = 'b'.repeat(32)
const ADMIN: Identity = { kind: 'admin' }
const ANONYMOUS: Identity = { kind: 'anonymous' }
const DEVICE: Identity = { kind: 'principal', id: DEVICE_ID, role: 'device' }
const SERVICE: Identity = { kind: 'principal', id: OTHER_ID, role: 'service' }

interface Request {
  method?: string
  url?: string
  identity?: Identity
  ip?: string
  headers?: IncomingHttpHeaders
}

function policyOf (specs: RuleSpec[]): CompiledPolicy {
  const rules = validateRuleSet(specs).map((spec, i) => ({ id: `r${i}`, ...spec })) as Rule[]
  return new CompiledPolicy(rules)
}

function decide (policy: CompiledPolicy, request: Request, nowMs = 1_000_000): Decision {
  return policy.evaluate({
    method: request.method ?? 'GET',
    url: request.url ?? '/',
    identity: request.identity ?? ANONYMOUS,
    ip: request.ip ?? '127.0.0.1',
    headers: request.headers ?? {},
  }, nowMs)
}

const BLOCK = { type: 'block', reason: 'no' } as const
const ALLOW = { type: 'allow' } as const

test('no rules, or no matching rule: allowed', () => {
  assert.deepEqual(decide(policyOf([]), {}), { type: 'allow', ruleId: null })
  assert.deepEqual(decide(policyOf([{ match: { path: '/x' }, action: BLOCK }]), { url: '/y' }), { type: 'allow', ruleId: null })
})

test('the first matching terminal rule decides', () => {
  const policy = policyOf([
    { match: { path: '/v1/devices/*' }, action: ALLOW },
    { match: { path: '/v1/**' }, action: { type: 'block', reason: 'API closed' } },
    { match: {}, action: { type: 'redirect', location: 'https://example.com/moved' } },
  ])
  assert.deepEqual(decide(policy, { url: '/v1/devices/abc' }), { type: 'allow', ruleId: 'r0' })
  assert.deepEqual(decide(policy, { url: '/v1/devices' }), { type: 'block', ruleId: 'r1', reason: 'API closed' })
  assert.deepEqual(decide(policy, { url: '/elsewhere' }), { type: 'redirect', ruleId: 'r2', location: 'https://example.com/moved' })
  // Order is everything: the same rules reversed.
  const reversed = policyOf([
    { match: {}, action: { type: 'redirect', location: 'https://example.com/moved' } },
    { match: { path: '/v1/devices/*' }, action: ALLOW },
  ])
  assert.equal(decide(reversed, { url: '/v1/devices/abc' }).type, 'redirect')
})

test('all given conditions must hold; within a list, any value', () => {
  const policy = policyOf([{
    match: { methods: ['POST', 'DELETE'], path: '/v1/**', roles: ['device', 'service'], cidrs: ['10.0.0.0/8'], headers: { 'x-env': 'prod' } },
    action: BLOCK,
  }])
  const base: Request = { method: 'POST', url: '/v1/x', identity: DEVICE, ip: '10.1.1.1', headers: { 'x-env': 'prod' } }
  assert.equal(decide(policy, base).type, 'block')
  assert.equal(decide(policy, { ...base, method: 'DELETE', identity: SERVICE }).type, 'block')
  assert.equal(decide(policy, { ...base, method: 'GET' }).type, 'allow')
  assert.equal(decide(policy, { ...base, url: '/v2/x' }).type, 'allow')
  assert.equal(decide(policy, { ...base, identity: ADMIN }).type, 'allow')
  assert.equal(decide(policy, { ...base, ip: '11.1.1.1' }).type, 'allow')
  assert.equal(decide(policy, { ...base, headers: { 'x-env': 'dev' } }).type, 'allow')
  assert.equal(decide(policy, { ...base, headers: {} }).type, 'allow')
})

test('methods: GET also covers HEAD, which Fastify serves for every GET route', () => {
  const policy = policyOf([{ match: { methods: ['GET'] }, action: BLOCK }])
  assert.equal(decide(policy, { method: 'HEAD' }).type, 'block')
  assert.equal(decide(policy, { method: 'POST' }).type, 'allow')
  assert.equal(decide(policyOf([{ match: { methods: ['HEAD'] }, action: BLOCK }]), { method: 'GET' }).type, 'allow')
})

test('roles and principals: admin, anonymous, each principal role, and principal ids', () => {
  const byRole = (roles: RuleSpec['match']['roles']) => policyOf([{ match: { roles }, action: BLOCK }])
  assert.equal(decide(byRole(['admin']), { identity: ADMIN }).type, 'block')
  assert.equal(decide(byRole(['admin']), { identity: DEVICE }).type, 'allow')
  assert.equal(decide(byRole(['anonymous']), { identity: ANONYMOUS }).type, 'block')
  assert.equal(decide(byRole(['anonymous']), { identity: ADMIN }).type, 'allow')
  assert.equal(decide(byRole(['node']), { identity: { kind: 'principal', id: OTHER_ID, role: 'node' } }).type, 'block')
  assert.equal(decide(byRole(['node']), { identity: DEVICE }).type, 'allow')
  const byId = policyOf([{ match: { principals: [DEVICE_ID] }, action: BLOCK }])
  assert.equal(decide(byId, { identity: DEVICE }).type, 'block')
  assert.equal(decide(byId, { identity: SERVICE }).type, 'allow')
  assert.equal(decide(byId, { identity: ADMIN }).type, 'allow')
  assert.equal(decide(byId, { identity: ANONYMOUS }).type, 'allow')
  // A request the identity hook never saw counts as anonymous.
  assert.equal(byRole(['anonymous']).evaluate({ method: 'GET', url: '/', identity: undefined, ip: undefined, headers: {} }, 0).type, 'block')
})

test('cidrs: IPv4, IPv6 and IPv4-mapped clients; an unknown address matches no prefix', () => {
  const policy = policyOf([{ match: { cidrs: ['192.0.2.0/24', '2001:db8::/32'] }, action: BLOCK }])
  assert.equal(decide(policy, { ip: '192.0.2.9' }).type, 'block')
  assert.equal(decide(policy, { ip: '::ffff:192.0.2.9' }).type, 'block')
  assert.equal(decide(policy, { ip: '2001:db8::5' }).type, 'block')
  assert.equal(decide(policy, { ip: '198.51.100.1' }).type, 'allow')
  assert.equal(decide(policy, { ip: '::1' }).type, 'allow')
  assert.equal(policy.evaluate({ method: 'GET', url: '/', identity: ANONYMOUS, ip: undefined, headers: {} }, 0).type, 'allow')
})

test('headers: exact values, /regex/flags, case-insensitive names, repeated headers joined', () => {
  const policy = policyOf([{ match: { headers: { 'User-Agent': '/^curl\\//i', 'x-team': 'red' } }, action: BLOCK }])
  assert.equal(decide(policy, { headers: { 'user-agent': 'CURL/8.0', 'x-team': 'red' } }).type, 'block')
  assert.equal(decide(policy, { headers: { 'user-agent': 'Mozilla/5.0 curl/8', 'x-team': 'red' } }).type, 'allow')
  assert.equal(decide(policy, { headers: { 'user-agent': 'curl/8.0', 'x-team': 'Red' } }).type, 'allow') // exact is exact
  assert.equal(decide(policy, { headers: { 'user-agent': 'curl/8.0' } }).type, 'allow')
  const joined = policyOf([{ match: { headers: { 'x-tag': '/(^|, )b(,|$)/' } }, action: BLOCK }])
  assert.equal(decide(joined, { headers: { 'x-tag': ['a', 'b'] as unknown as string } }).type, 'block')
  // A literal that merely starts with "/" is exact.
  const literal = policyOf([{ match: { headers: { 'x-prefix': '/api' } }, action: BLOCK }])
  assert.equal(decide(literal, { headers: { 'x-prefix': '/api' } }).type, 'block')
  assert.equal(decide(literal, { headers: { 'x-prefix': '/apix' } }).type, 'allow')
})

test('rate_limit counts and goes on to the next rule under its limit; over it, it decides with Retry-After', () => {
  const policy = policyOf([
    { match: { path: '/v1/**' }, action: { type: 'rate_limit', max: 2, windowMs: 60_000, key: 'address' } },
    { match: { path: '/v1/secret' }, action: { type: 'block', reason: 'secret' } },
  ])
  const t0 = 60_000 * 100
  assert.deepEqual(decide(policy, { url: '/v1/open' }, t0), { type: 'allow', ruleId: null })
  assert.equal(decide(policy, { url: '/v1/secret' }, t0).type, 'block') // counted, then blocked by the next rule
  const limited = decide(policy, { url: '/v1/open' }, t0 + 1)
  assert.equal(limited.type, 'rate_limited')
  assert.equal(limited.type === 'rate_limited' && limited.ruleId, 'r0')
  assert.equal(limited.type === 'rate_limited' && limited.retryAfterS, 60)
  // Other addresses have their own count; an IPv6 /64 is one address.
  assert.equal(decide(policy, { url: '/v1/open', ip: '127.0.0.2' }, t0 + 1).type, 'allow')
  assert.equal(decide(policy, { url: '/v1/open', ip: '2001:db8::1' }, t0 + 1).type, 'allow')
  assert.equal(decide(policy, { url: '/v1/open', ip: '2001:db8::2' }, t0 + 1).type, 'allow')
  assert.equal(decide(policy, { url: '/v1/open', ip: '2001:db8::3' }, t0 + 1).type, 'rate_limited')
  assert.equal(decide(policy, { url: '/v1/open', ip: '2001:db8:0:1::3' }, t0 + 1).type, 'allow')
})

test('rate_limit by principal: each principal its own count; without one, the address', () => {
  const policy = policyOf([{ match: {}, action: { type: 'rate_limit', max: 1, windowMs: 60_000, key: 'principal' } }])
  assert.equal(decide(policy, { identity: DEVICE, ip: '10.0.0.1' }).type, 'allow')
  assert.equal(decide(policy, { identity: DEVICE, ip: '10.0.0.2' }).type, 'rate_limited')
  assert.equal(decide(policy, { identity: SERVICE, ip: '10.0.0.1' }).type, 'allow')
  assert.equal(decide(policy, { identity: ANONYMOUS, ip: '10.0.0.1' }).type, 'allow')
  assert.equal(decide(policy, { identity: ANONYMOUS, ip: '10.0.0.1' }).type, 'rate_limited')
})

test('RateLimitState keeps the counts of a rule that did not change across recompiles', () => {
  const state = new RateLimitState(1000)
  const limit = { match: {}, action: { type: 'rate_limit', max: 1, windowMs: 60_000, key: 'address' } } as const
  const first = [{ id: 'limit', ...limit }] as Rule[]
  const p1 = new CompiledPolicy(first, state.assign(first))
  assert.equal(p1.evaluate({ method: 'GET', url: '/', identity: ANONYMOUS, ip: '10.0.0.1', headers: {} }, 0).type, 'allow')
  const second = [{ id: 'other', match: { path: '/x' }, action: ALLOW }, { id: 'limit', ...limit }] as Rule[]
  const p2 = new CompiledPolicy(second, state.assign(second))
  assert.equal(p2.evaluate({ method: 'GET', url: '/', identity: ANONYMOUS, ip: '10.0.0.1', headers: {} }, 1).type, 'rate_limited')
  const changed = [{ id: 'limit', match: {}, action: { type: 'rate_limit', max: 2, windowMs: 60_000, key: 'address' } }] as Rule[]
  const p3 = new CompiledPolicy(changed, state.assign(changed))
  assert.equal(p3.evaluate({ method: 'GET', url: '/', identity: ANONYMOUS, ip: '10.0.0.1', headers: {} }, 2).type, 'allow')
})

test('validateRule returns the canonical form: known keys only, in a fixed order', () => {
  const rule = validateRule({ action: { type: 'allow' }, match: { path: '/x', methods: ['GET'] }, description: 'd', id: 'a-1' })
  assert.deepEqual(Object.keys(rule), ['id', 'description', 'match', 'action'])
  assert.deepEqual(Object.keys(rule.match), ['methods', 'path'])
  assert.equal(JSON.stringify(validateRule(JSON.parse(JSON.stringify(rule)))), JSON.stringify(rule))
})

test('every bad field is refused with its path and what is wrong', () => {
  const ok = { match: {}, action: { type: 'allow' } }
  const cases: Array<[unknown, string, RegExp]> = [
    [null, 'rule', /must be an object, got null/],
    [[], 'rule', /must be an object, got an array/],
    [{ action: ALLOW }, 'rule.match', /is required/],
    [{ match: {} }, 'rule.action', /is required/],
    [{ ...ok, extra: 1 }, 'rule', /unknown property "extra"/],
    [{ ...ok, id: '' }, 'rule.id', /1 to 64 letters/],
    [{ ...ok, id: '-x' }, 'rule.id', /starting with a letter or digit/],
    [{ ...ok, id: 'a'.repeat(65) }, 'rule.id', /1 to 64/],
    [{ ...ok, description: '' }, 'rule.description', /1 to 256 characters, got 0/],
    [{ ...ok, description: 'a\nb' }, 'rule.description', /control characters/],
    [{ match: { verb: 'GET' }, action: ALLOW }, 'rule.match', /unknown property "verb"/],
    [{ match: { methods: 'GET' }, action: ALLOW }, 'rule.match.methods', /must be an array, got a string/],
    [{ match: { methods: [] }, action: ALLOW }, 'rule.match.methods', /must not be empty/],
    [{ match: { methods: ['get'] }, action: ALLOW }, 'rule.match.methods.0', /HTTP method, got "get" \(methods are written in upper case: "GET"\)/],
    [{ match: { methods: ['GET', 'FETCH'] }, action: ALLOW }, 'rule.match.methods.1', /HTTP method, got "FETCH"/],
    [{ match: { methods: ['GET', 'GET'] }, action: ALLOW }, 'rule.match.methods.1', /repeats "GET"/],
    [{ match: { path: 5 }, action: ALLOW }, 'rule.match.path', /must be a string, got a number/],
    [{ match: { path: '/a/**/b' }, action: ALLOW }, 'rule.match.path', /only as its last segment/],
    [{ match: { roles: ['root'] }, action: ALLOW }, 'rule.match.roles.0', /one of admin, device, service, node, anonymous, got "root"/],
    [{ match: { principals: ['A'.repeat(32)] }, action: ALLOW }, 'rule.match.principals.0', /32 lowercase hex/],
    [{ match: { cidrs: ['10.0.0.1/8'] }, action: ALLOW }, 'rule.match.cidrs.0', /"10\.0\.0\.1\/8" has bits set below its \/8 prefix/],
    [{ match: { cidrs: ['10.0.0.0/8', 'nope'] }, action: ALLOW }, 'rule.match.cidrs.1', /"nope" is not an IPv4 or IPv6/],
    [{ match: { cidrs: [42] }, action: ALLOW }, 'rule.match.cidrs.0', /must be a string like/],
    [{ match: { headers: {} }, action: ALLOW }, 'rule.match.headers', /at least one header/],
    [{ match: { headers: { 'bad name': 'x' } }, action: ALLOW }, 'rule.match.headers', /"bad name", which is not a header name/],
    [{ match: { headers: { 'X-A': 'x', 'x-a': 'y' } }, action: ALLOW }, 'rule.match.headers.x-a', /case-insensitive/],
    [{ match: { headers: { 'x-a': 1 } }, action: ALLOW }, 'rule.match.headers.x-a', /must be a string/],
    [{ match: { headers: { 'x-a': '/(/' } }, action: ALLOW }, 'rule.match.headers.x-a', /not a valid regular expression/],
    [{ match: { headers: { 'x-a': '/a/g' } }, action: ALLOW }, 'rule.match.headers.x-a', /regex flags "g"; only i, m, s and u/],
    [{ match: { headers: { 'x-a': '/a/ii' } }, action: ALLOW }, 'rule.match.headers.x-a', /each once/],
    [{ match: { headers: { 'x-a': '/^(a+)+$/' } }, action: ALLOW }, 'rule.match.headers.x-a', /nested quantifier/],
    [{ match: {}, action: { type: 'deny' } }, 'rule.action.type', /one of allow, block, redirect, rate_limit, got "deny"/],
    [{ match: {}, action: {} }, 'rule.action.type', /is required/],
    [{ match: {}, action: { type: 'allow', reason: 'x' } }, 'rule.action', /unknown property "reason"; "allow" actions have only type$/],
    [{ match: {}, action: { type: 'block' } }, 'rule.action.reason', /is required/],
    [{ match: {}, action: { type: 'block', reason: '' } }, 'rule.action.reason', /1 to 256 characters/],
    [{ match: {}, action: { type: 'block', reason: 'x', location: 'https://a' } }, 'rule.action', /unknown property "location"; "block" actions have only type, reason$/],
    [{ match: {}, action: { type: 'redirect' } }, 'rule.action.location', /is required/],
    [{ match: {}, action: { type: 'redirect', location: '/relative' } }, 'rule.action.location', /absolute http\(s\) URL, got "\/relative"/],
    [{ match: {}, action: { type: 'redirect', location: 'javascript:alert(1)' } }, 'rule.action.location', /http or https URL, got scheme "javascript"/],
    [{ match: {}, action: { type: 'redirect', location: 'https://u:p@example.com/' } }, 'rule.action.location', /user name or password/],
    [{ match: {}, action: { type: 'rate_limit', windowMs: 1000, key: 'address' } }, 'rule.action.max', /is required/],
    [{ match: {}, action: { type: 'rate_limit', max: 0, windowMs: 1000, key: 'address' } }, 'rule.action.max', /integer from 1 to 1000000, got 0/],
    [{ match: {}, action: { type: 'rate_limit', max: 1.5, windowMs: 1000, key: 'address' } }, 'rule.action.max', /got 1.5/],
    [{ match: {}, action: { type: 'rate_limit', max: 1, windowMs: 999, key: 'address' } }, 'rule.action.windowMs', /from 1000 to 86400000, got 999/],
    [{ match: {}, action: { type: 'rate_limit', max: 1, windowMs: 1000, key: 'user' } }, 'rule.action.key', /one of principal, address, got "user"/],
  ]
  for (const [input, field, message] of cases) {
    assert.throws(() => validateRule(input), (err: unknown) => {
      assert.ok(err instanceof PolicyValidationError, `${field}: ${String(err)}`)
      assert.equal(err.field, field, err.message)
      assert.equal(err.statusCode, 400)
      assert.equal(err.code, 'MN_ERR_POLICY_INVALID')
      assert.match(err.message, message)
      assert.ok(err.message.startsWith(field + ' '), err.message)
      return true
    })
  }
})

test('validateRuleSet: an array, at most 256 rules, distinct ids; errors name the rule', () => {
  assert.throws(() => validateRuleSet({}), /rules must be an array of rules, got an object/)
  assert.throws(() => validateRuleSet(Array(257).fill({ match: {}, action: ALLOW })), /at most 256 rules, got 257/)
  assert.throws(() => validateRuleSet([{ id: 'a', match: {}, action: ALLOW }, { id: 'a', match: {}, action: ALLOW }]), /rules\.1\.id repeats the id "a" of rules\.0/)
  assert.throws(() => validateRuleSet([{ match: {}, action: ALLOW }, { match: { cidrs: ['x'] }, action: ALLOW }], 'body.rules'), /^PolicyValidationError: body\.rules\.1\.match\.cidrs\.0 "x"/)
})

test('the default rules validate, allow health checks and limit anonymous API probing only', () => {
  const rules = validateRuleSet(DEFAULT_RULES) as Rule[]
  const policy = new CompiledPolicy(rules)
  for (let i = 0; i < 500; i++) assert.equal(decide(policy, { url: '/healthz' }).type, 'allow')
  for (let i = 0; i < 500; i++) assert.equal(decide(policy, { url: '/v1/devices', identity: ADMIN }).type, 'allow')
  for (let i = 0; i < 500; i++) assert.equal(decide(policy, { url: '/v1/me', identity: DEVICE }).type, 'allow')
  let limited = 0
  for (let i = 0; i < 200; i++) if (decide(policy, { url: '/v1/devices' }).type === 'rate_limited') limited++
  assert.equal(limited, 80)
})
