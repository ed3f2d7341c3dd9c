/**
 * The 20 policy rules of the "with rules" phases: the two defaults a fresh hub starts with,
 * then 18 that a real deployment might hold. None matches a benchmarked request, so every
 * request walks all 20 and is allowed by no rule, the engine's most expensive outcome short
 * of a refusal. Several are built to fail late (method, role and path match, then the CIDR
 * or a header does not), so the walk does the work a real rule set makes it do: path
 * regexes, the parsed client address against prefixes, header regexes.
 */
import { CompiledPolicy, DEFAULT_RULES, validateRuleSet, type Identity, type Rule, type RuleSpec } from '../../src/cage/index.js'

/** Sent on every benchmarked request, so that the user-agent rules test a real value. */
export const USER_AGENT = 'metanode-bench/1 (node)'

// Principals of a blocklist and a device under maintenance: none of them is enrolled.
const COMPROMISED = ['0f1e2d3c4b5a69788796a5b4c3d2e1f0', '11112222333344445555666677778888', 'deadbeefdeadbeefdeadbeefdeadbeef']
const UNDER_MAINTENANCE = '0123456789abcdef0123456789abcdef'

const CUSTOM_RULES: RuleSpec[] = [
  { id: 'per-principal-devices', description: 'Devices poll; 600 a minute each is plenty.', match: { roles: ['device', 'node'] }, action: { type: 'rate_limit', max: 600, windowMs: 60_000, key: 'principal' } },
  { id: 'abuse-networks', description: 'Networks seen probing the API.', match: { cidrs: ['203.0.113.0/24', '198.18.0.0/15', '100.64.0.0/10', '2001:db8:bad::/48'] }, action: { type: 'block', reason: 'this network is blocked' } },
  { id: 'compromised-keys', description: 'Keys reported leaked, until they are revoked.', match: { principals: COMPROMISED }, action: { type: 'block', reason: 'this key must be rotated' } },
  { id: 'no-scrapers', match: { headers: { 'user-agent': '/scrapy|python-requests|go-http-client|zgrab/i' } }, action: { type: 'block', reason: 'automated clients need credentials' } },
  { id: 'debug-header', description: 'Debug switches are for the lab only.', match: { headers: { 'x-metanode-debug': '/^(1|true|on)$/i' } }, action: { type: 'block', reason: 'debug requests are refused here' } },
  { id: 'retired-v0', match: { path: '/v0/**' }, action: { type: 'block', reason: 'API v0 was retired; use /v1' } },
  { id: 'old-dashboard', match: { methods: ['GET'], path: '/dashboard/**' }, action: { type: 'redirect', location: 'https://status.example.com/' } },
  { id: 'enrol-from-office', match: { methods: ['POST'], path: '/v1/devices', cidrs: ['10.20.0.0/16', '2001:db8:42::/48'] }, action: { type: 'allow' } },
  { id: 'enrol-elsewhere', match: { methods: ['POST'], path: '/v1/devices' }, action: { type: 'block', reason: 'devices are enrolled from the office network' } },
  { id: 'self-enrol-limit', match: { methods: ['POST'], path: '/v1/enroll' }, action: { type: 'rate_limit', max: 30, windowMs: 60_000, key: 'address' } },
  { id: 'messages-limit', match: { methods: ['POST'], path: '/v1/devices/*/messages', roles: ['service'] }, action: { type: 'rate_limit', max: 6_000, windowMs: 60_000, key: 'principal' } },
  { id: 'stream-limit', match: { methods: ['GET'], path: '/v1/stream' }, action: { type: 'rate_limit', max: 30, windowMs: 60_000, key: 'address' } },
  { id: 'maintenance', description: 'A device being repaired: leave its state alone.', match: { path: `/v1/devices/${UNDER_MAINTENANCE}/state` }, action: { type: 'block', reason: 'this device is under maintenance' } },
  { id: 'partner-no-writes', description: 'The partner network reads state, never writes it.', match: { methods: ['PATCH', 'PUT'], path: '/v1/devices/*/state', cidrs: ['192.0.2.0/24', '2001:db8:77::/48'] }, action: { type: 'block', reason: 'read-only access from this network' } },
  { id: 'tenant-freeze', description: 'Change freeze for one tenant.', match: { methods: ['PATCH', 'PUT'], path: '/v1/devices/*/state', headers: { 'x-tenant': 'acme' } }, action: { type: 'block', reason: 'tenant acme is in a change freeze' } },
  { id: 'app-reads-limit', match: { methods: ['GET'], path: '/v1/devices/*/state', headers: { 'user-agent': '/^MetanodeApp\\//' } }, action: { type: 'rate_limit', max: 600, windowMs: 60_000, key: 'address' } },
  { id: 'services-from-cluster', description: 'Backends run in the cluster network; count them there.', match: { roles: ['service'], path: '/v1/**', cidrs: ['fd00::/8', '172.16.0.0/12'] }, action: { type: 'rate_limit', max: 100_000, windowMs: 60_000, key: 'principal' } },
  { id: 'old-sdk', match: { path: '/v1/**', headers: { 'user-agent': '/^metanode-sdk\\/0\\./' } }, action: { type: 'block', reason: 'SDK 0.x is no longer supported; upgrade' } },
]

/** The 20 rules, as sent to PUT /v1/policies: the defaults first, as a fresh hub has them. */
export const TWENTY_RULES: RuleSpec[] = [...DEFAULT_RULES.map(rule => structuredClone(rule) as RuleSpec), ...CUSTOM_RULES]
if (TWENTY_RULES.length !== 20) throw new Error(`expected 20 rules, built ${TWENTY_RULES.length}`)

export interface RequestShape {
  method: string
  url: string
  identity: Identity
  headers: Record<string, string>
}

/**
 * Checks, before any load, that no rule matches the benchmarked requests: each shape is
 * evaluated three times against the rules compiled with every rate limit cut to 1, so a
 * limit that counted the request would refuse its second evaluation.
 */
export function assertNoRuleMatches (shapes: RequestShape[]): void {
  const strict = validateRuleSet(TWENTY_RULES).map(rule => ({
    ...rule,
    action: rule.action.type === 'rate_limit' ? { ...rule.action, max: 1 } : rule.action,
  })) as Rule[]
  const policy = new CompiledPolicy(strict)
  for (const shape of shapes) {
    for (let i = 0; i < 3; i++) {
      const decision = policy.evaluate({ ...shape, ip: '127.0.0.1' }, Date.now())
      if (decision.type !== 'allow' || decision.ruleId !== null) {
        throw new Error(`rule ${decision.ruleId} matches ${shape.method} ${shape.url} (${decision.type}): the rules must not match the benchmarked requests`)
      }
    }
  }
}

/**
 * The engine alone, in this process: µs per evaluation of each shape against the 20 rules
 * and against none (a fixed count, well under a second). Compared with the hub's CPU per
 * request it says what share of a request the rules can take, free of the noise of the
 * machine that the request rates carry.
 */
export function timeEvaluation (shapes: RequestShape[], iterations = 100_000): { twentyUs: number, noneUs: number } {
  const rules = validateRuleSet(TWENTY_RULES) as Rule[]
  const time = (policy: CompiledPolicy): number => {
    const facts = shapes.map(shape => ({ ...shape, ip: '127.0.0.1' }))
    let allowed = 0
    const nowMs = Date.now()
    // One untimed pass compiles the code; the count keeps the loop from being optimised away.
    for (let i = 0; i < iterations; i++) allowed += policy.evaluate(facts[i % facts.length], nowMs).type === 'allow' ? 1 : 0
    const t0 = performance.now()
    for (let i = 0; i < iterations; i++) allowed += policy.evaluate(facts[i % facts.length], nowMs).type === 'allow' ? 1 : 0
    const us = (performance.now() - t0) * 1000 / iterations
    if (allowed !== 2 * iterations) throw new Error('a benchmarked request was refused by the rules')
    return us
  }
  return { twentyUs: time(new CompiledPolicy(rules)), noneUs: time(new CompiledPolicy([])) }
}
