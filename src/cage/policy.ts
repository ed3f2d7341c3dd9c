/**
 * The policy engine of the HTTP CAGE: the rule model, its validation (each problem named
 * by field), compilation and evaluation.
 *
 * Rules are evaluated in order for every request. `allow`, `block` and `redirect` are
 * terminal: the first matching one decides. A matching `rate_limit` counts the request; over
 * the limit it decides (429), under it evaluation goes on to the next rule, so limits can
 * sit above the rules they guard. No terminal match: the request is allowed.
 *
 * Compilation happens once per rule-set change; evaluation is a loop over the compiled
 * rules that allocates nothing on the path of an allowed request apart from the lazily
 * computed request path or address when a rule needs them.
 */
import { METHODS, type IncomingHttpHeaders } from 'node:http'
import { randomUUID } from 'node:crypto'
import { isPrincipalId } from '../protocol/index.js'
import { PolicyValidationError } from './errors.js'
import type { Identity } from './identity.js'
import { addressKey, cidrContains, parseAddress, parseCidr, type Address, type Cidr } from './cidr.js'
import { compilePathPattern, requestPath } from './path-pattern.js'
import { RateCounters } from './rate-limit.js'

export const POLICY_ROLES = Object.freeze(['admin', 'device', 'service', 'node', 'anonymous'] as const)
export type PolicyRole = typeof POLICY_ROLES[number]
export const ACTION_TYPES = Object.freeze(['allow', 'block', 'redirect', 'rate_limit'] as const)
export const RATE_LIMIT_KEYS = Object.freeze(['principal', 'address'] as const)

/** Rules in one set. Evaluation is linear in this, so it stays small. */
export const RULES_MAX = 256
export const RULE_ID_PATTERN = '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$'
export const DESCRIPTION_CHARS_MAX = 256
export const METHODS_MAX = 16
export const PRINCIPALS_MAX = 1_000
export const CIDRS_MAX = 256
export const HEADERS_MAX = 16
export const HEADER_VALUE_CHARS_MAX = 1_024
export const REASON_CHARS_MAX = 256
export const LOCATION_CHARS_MAX = 2_048
export const RATE_MAX_MAX = 1_000_000
export const WINDOW_MS_MIN = 1_000
export const WINDOW_MS_MAX = 86_400_000
/** Rate-limit keys kept in memory across all rules; split evenly between rate-limit rules. */
export const RATE_LIMIT_KEYS_MAX_DEFAULT = 100_000

export interface RuleMatch {
  /** HTTP methods in upper case; `GET` also matches `HEAD`, which Fastify serves for every GET route. */
  methods?: string[]
  /** Path pattern: `*` is one segment, `**` (last only) any rest. */
  path?: string
  roles?: PolicyRole[]
  /** Principal ids (32 lowercase hex characters). */
  principals?: string[]
  /** IPv4 or IPv6 prefixes; IPv4-mapped IPv6 clients match IPv4 prefixes. */
  cidrs?: string[]
  /** Lower-case header name → exact value, or `/regex/flags`. */
  headers?: Record<string, string>
}

export type RuleAction =
  | { type: 'allow' }
  | { type: 'block', reason: string }
  | { type: 'redirect', location: string }
  | { type: 'rate_limit', max: number, windowMs: number, key: 'principal' | 'address' }

/** A validated rule; `id` is absent when the caller left it to the store to choose. */
export interface RuleSpec {
  id?: string
  description?: string
  match: RuleMatch
  action: RuleAction
}

/** A rule of the active set. */
export interface Rule extends RuleSpec {
  id: string
}

/** What evaluation decided. Terminal decisions are built once per rule, at compile time. */
export type Decision =
  | { readonly type: 'allow', readonly ruleId: string | null }
  | { readonly type: 'block', readonly ruleId: string, readonly reason: string }
  | { readonly type: 'redirect', readonly ruleId: string, readonly location: string }
  | { readonly type: 'rate_limited', readonly ruleId: string, readonly retryAfterS: number, readonly max: number, readonly windowMs: number }

/** The facts about a request that rules can match. */
export interface RequestFacts {
  method: string
  /** The raw request target, as `request.url`. */
  url: string
  identity: Identity | null | undefined
  /** The client's address (`request.ip`); undefined when the socket is gone. */
  ip: string | undefined
  headers: IncomingHttpHeaders
}

/** The safe defaults a fresh hub starts with (see docs/http-cage.md). */
export const DEFAULT_RULES: readonly Rule[] = deepFreeze([
  {
    id: 'default-healthz-allow',
    description: 'Health checks are never limited or blocked, so load balancers and start scripts keep working.',
    match: { methods: ['GET'], path: '/healthz' },
    action: { type: 'allow' },
  },
  {
    id: 'default-anonymous-api-limit',
    description: 'Requests without credentials to the API get 401 at best; more than 120 a minute from one address (one /64 for IPv6) is probing.',
    match: { roles: ['anonymous'], path: '/v1/**' },
    action: { type: 'rate_limit', max: 120, windowMs: 60_000, key: 'address' },
  },
])

const NO_MATCH: Decision = Object.freeze({ type: 'allow', ruleId: null })
const ROLE_BITS: Readonly<Record<PolicyRole, number>> = Object.freeze({ admin: 1, device: 2, service: 4, node: 8, anonymous: 16 })
const KNOWN_METHODS = new Set(METHODS)
const RULE_ID = new RegExp(RULE_ID_PATTERN)
// RFC 9110 5.1 field-name token.
const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/
const REGEX_VALUE = /^\/(.+)\/([a-z]*)$/s
const REGEX_FLAGS = /^(?!.*(.).*\1)[imsu]*$/
// A group repeated by a quantifier that holds a quantifier itself, like (a+)+ or (\w*)*:
// the classic shape of a pattern that takes exponential time on a crafted input.
const NESTED_QUANTIFIER = /\((?:[^()\\]|\\.)*[+*}](?:[^()\\]|\\.)*\)[+*{]/
const CONTROL = /[\u0000-\u001f\u007f]/
const MATCH_KEYS = ['methods', 'path', 'roles', 'principals', 'cidrs', 'headers']
const RULE_KEYS = ['id', 'description', 'match', 'action']
const ACTION_KEYS: Readonly<Record<string, readonly string[]>> = {
  allow: ['type'],
  block: ['type', 'reason'],
  redirect: ['type', 'location'],
  rate_limit: ['type', 'max', 'windowMs', 'key'],
}

// ---------------------------------------------------------------------------------------
// Validation. Each check names the field as a dotted path from what the caller sent, like
// the HTTP layer's schema errors (`body.rules.2.match.cidrs.0 …`).

/** Validates one rule and returns its canonical form (known keys only, in a fixed order). */
export function validateRule (input: unknown, field = 'rule'): RuleSpec {
  const rule = requireObject(input, field)
  requireKnownKeys(rule, RULE_KEYS, field)
  const spec: RuleSpec = { match: validateMatch(rule.match, `${field}.match`), action: validateAction(rule.action, `${field}.action`) }
  if (rule.id !== undefined) spec.id = validateRuleId(rule.id, `${field}.id`)
  if (rule.description !== undefined) spec.description = requireText(rule.description, `${field}.description`, DESCRIPTION_CHARS_MAX)
  // Fixed key order, so stored JSON is canonical.
  return orderRule(spec)
}

/** Validates a whole set: an array of at most RULES_MAX rules with distinct ids. */
export function validateRuleSet (input: unknown, field = 'rules'): RuleSpec[] {
  if (!Array.isArray(input)) fail(field, `must be an array of rules, got ${typeName(input)}`)
  if (input.length > RULES_MAX) fail(field, `must hold at most ${RULES_MAX} rules, got ${input.length}`)
  const specs = input.map((rule, i) => validateRule(rule, `${field}.${i}`))
  requireDistinctIds(specs, field)
  return specs
}

export function validateRuleId (input: unknown, field: string): string {
  if (typeof input !== 'string' || !RULE_ID.test(input)) {
    fail(field, `must be 1 to 64 letters, digits, ".", "_" or "-", starting with a letter or digit; got ${preview(input)}`)
  }
  return input
}

export function requireDistinctIds (rules: ReadonlyArray<{ id?: string }>, field: string): void {
  const seen = new Map<string, number>()
  rules.forEach((rule, i) => {
    if (rule.id === undefined) return
    const first = seen.get(rule.id)
    if (first !== undefined) fail(`${field}.${i}.id`, `repeats the id ${JSON.stringify(rule.id)} of ${field}.${first}`)
    seen.set(rule.id, i)
  })
}

/** A fresh rule id for a rule given without one. */
export function newRuleId (): string {
  return `rule-${randomUUID()}`
}

function validateMatch (input: unknown, field: string): RuleMatch {
  const match = requireObject(input, field)
  requireKnownKeys(match, MATCH_KEYS, field)
  const out: RuleMatch = {}
  if (match.methods !== undefined) {
    out.methods = requireList(match.methods, `${field}.methods`, METHODS_MAX, (value, at) => {
      if (typeof value !== 'string' || !KNOWN_METHODS.has(value)) {
        const hint = typeof value === 'string' && KNOWN_METHODS.has(value.toUpperCase()) ? ` (methods are written in upper case: ${JSON.stringify(value.toUpperCase())})` : ''
        fail(at, `must be an HTTP method, got ${preview(value)}${hint}`)
      }
      return value
    })
  }
  if (match.path !== undefined) {
    if (typeof match.path !== 'string') fail(`${field}.path`, `must be a string, got ${typeName(match.path)}`)
    try {
      compilePathPattern(match.path)
    } catch (err) {
      fail(`${field}.path`, (err as Error).message)
    }
    out.path = match.path
  }
  if (match.roles !== undefined) {
    out.roles = requireList(match.roles, `${field}.roles`, POLICY_ROLES.length, (value, at) => {
      if (typeof value !== 'string' || !(POLICY_ROLES as readonly string[]).includes(value)) {
        fail(at, `must be one of ${POLICY_ROLES.join(', ')}, got ${preview(value)}`)
      }
      return value as PolicyRole
    })
  }
  if (match.principals !== undefined) {
    out.principals = requireList(match.principals, `${field}.principals`, PRINCIPALS_MAX, (value, at) => {
      if (!isPrincipalId(value)) fail(at, `must be a principal id (32 lowercase hex characters), got ${preview(value)}`)
      return value
    })
  }
  if (match.cidrs !== undefined) {
    out.cidrs = requireList(match.cidrs, `${field}.cidrs`, CIDRS_MAX, (value, at) => {
      if (typeof value !== 'string') fail(at, `must be a string like "10.0.0.0/8" or "2001:db8::/32", got ${typeName(value)}`)
      try {
        parseCidr(value)
      } catch (err) {
        fail(at, `${JSON.stringify(value)} ${(err as Error).message}`)
      }
      return value
    })
  }
  if (match.headers !== undefined) out.headers = validateHeaders(match.headers, `${field}.headers`)
  return out
}

function validateHeaders (input: unknown, field: string): Record<string, string> {
  const headers = requireObject(input, field)
  const names = Object.keys(headers)
  if (names.length === 0) fail(field, 'must name at least one header (leave it out to match any headers)')
  if (names.length > HEADERS_MAX) fail(field, `must name at most ${HEADERS_MAX} headers, got ${names.length}`)
  const out: Record<string, string> = {}
  const lower = new Set<string>()
  for (const name of names) {
    const at = `${field}.${name}`
    if (!HEADER_NAME.test(name)) fail(field, `has ${JSON.stringify(name)}, which is not a header name`)
    if (lower.has(name.toLowerCase())) fail(at, 'names a header named before (header names are case-insensitive)')
    lower.add(name.toLowerCase())
    const value = headers[name]
    if (typeof value !== 'string') fail(at, `must be a string (an exact value, or "/regex/flags"), got ${typeName(value)}`)
    if (value.length > HEADER_VALUE_CHARS_MAX) fail(at, `must be at most ${HEADER_VALUE_CHARS_MAX} characters, got ${value.length}`)
    const regex = REGEX_VALUE.exec(value)
    if (regex !== null) {
      if (!REGEX_FLAGS.test(regex[2])) fail(at, `has regex flags ${JSON.stringify(regex[2])}; only i, m, s and u are allowed, each once`)
      if (NESTED_QUANTIFIER.test(regex[1])) fail(at, 'has a nested quantifier like (a+)+, which can take exponential time on a crafted header; rewrite it without one')
      try {
        new RegExp(regex[1], regex[2])
      } catch (err) {
        fail(at, `is not a valid regular expression: ${(err as Error).message}`)
      }
    }
    out[name] = value
  }
  return out
}

function validateAction (input: unknown, field: string): RuleAction {
  const action = requireObject(input, field)
  const type = action.type
  requirePresent(type, `${field}.type`)
  if (typeof type !== 'string' || !(ACTION_TYPES as readonly string[]).includes(type)) {
    fail(`${field}.type`, `must be one of ${ACTION_TYPES.join(', ')}, got ${preview(type)}`)
  }
  requireKnownKeys(action, ACTION_KEYS[type], field, `; "${type}" actions have only ${ACTION_KEYS[type].join(', ')}`)
  switch (type) {
    case 'allow':
      return { type }
    case 'block':
      return { type, reason: requireText(action.reason, `${field}.reason`, REASON_CHARS_MAX) }
    case 'redirect':
      return { type, location: validateLocation(action.location, `${field}.location`) }
    default: {
      const max = requireInteger(action.max, `${field}.max`, 1, RATE_MAX_MAX)
      const windowMs = requireInteger(action.windowMs, `${field}.windowMs`, WINDOW_MS_MIN, WINDOW_MS_MAX)
      const key = action.key
      requirePresent(key, `${field}.key`)
      if (typeof key !== 'string' || !(RATE_LIMIT_KEYS as readonly string[]).includes(key)) {
        fail(`${field}.key`, `must be one of ${RATE_LIMIT_KEYS.join(', ')}, got ${preview(key)}`)
      }
      return { type: 'rate_limit', max, windowMs, key: key as 'principal' | 'address' }
    }
  }
}

function validateLocation (input: unknown, field: string): string {
  requirePresent(input, field)
  if (typeof input !== 'string') fail(field, `must be an absolute http(s) URL, got ${typeName(input)}`)
  if (input.length > LOCATION_CHARS_MAX) fail(field, `must be at most ${LOCATION_CHARS_MAX} characters, got ${input.length}`)
  let url: URL
  try {
    url = new URL(input)
  } catch {
    fail(field, `must be an absolute http(s) URL, got ${preview(input)}`)
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') fail(field, `must be an http or https URL, got scheme ${JSON.stringify(url.protocol.slice(0, -1))}`)
  // Credentials in a Location would be handed to every client that is redirected.
  if (url.username !== '' || url.password !== '') fail(field, 'must not carry a user name or password')
  if (CONTROL.test(input) || /\s/.test(input)) fail(field, 'must not contain spaces or control characters')
  return input
}

// ---------------------------------------------------------------------------------------
// Compilation and evaluation.

interface HeaderMatcher {
  readonly name: string
  readonly exact: string | null
  readonly regex: RegExp | null
}

interface CompiledRule {
  readonly id: string
  readonly methods: ReadonlySet<string> | null
  /** OR of ROLE_BITS; 0 matches every role. */
  readonly roles: number
  readonly principals: ReadonlySet<string> | null
  readonly path: RegExp | null
  readonly cidrs: readonly Cidr[] | null
  readonly headers: readonly HeaderMatcher[] | null
  /** The decision of a terminal rule; null for rate limits. */
  readonly decision: Decision | null
  readonly limiter: RateCounters | null
  readonly limitKey: 'principal' | 'address'
}

/** Rate-limit counters that outlive a recompile, keyed by rule id and limit. */
export class RateLimitState {
  readonly keysMax: number
  #byRule = new Map<string, RateCounters>()

  constructor (keysMax = RATE_LIMIT_KEYS_MAX_DEFAULT) {
    if (!Number.isSafeInteger(keysMax) || keysMax < 1) throw new RangeError(`keysMax must be a positive integer, got ${String(keysMax)}`)
    this.keysMax = keysMax
  }

  /**
   * The counters for each rate-limit rule of `rules`: a rule that kept its id, limit, window
   * and key keeps its counts, so editing another rule does not reset every limit. Counters of
   * rules no longer present are dropped. The key budget is split evenly between the rules.
   */
  assign (rules: readonly Rule[]): Map<Rule, RateCounters> {
    const limited = rules.filter(rule => rule.action.type === 'rate_limit')
    const keysPerRule = Math.max(1, Math.floor(this.keysMax / Math.max(1, limited.length)))
    const next = new Map<string, RateCounters>()
    const assigned = new Map<Rule, RateCounters>()
    for (const rule of limited) {
      const action = rule.action as Extract<RuleAction, { type: 'rate_limit' }>
      const signature = `${rule.id}\u0000${action.max}\u0000${action.windowMs}\u0000${action.key}`
      const counters = this.#byRule.get(signature) ?? new RateCounters(action.max, action.windowMs, keysPerRule)
      counters.keysMax = keysPerRule
      next.set(signature, counters)
      assigned.set(rule, counters)
    }
    this.#byRule = next
    return assigned
  }
}

/** An immutable, compiled rule set: what requests are evaluated against. */
export class CompiledPolicy {
  readonly rules: readonly Rule[]
  readonly #compiled: readonly CompiledRule[]

  /** Compiles validated rules; `counters` comes from RateLimitState.assign over the same rules. */
  constructor (rules: readonly Rule[], counters: Map<Rule, RateCounters> = new RateLimitState().assign(rules)) {
    this.rules = rules
    this.#compiled = rules.map(rule => compileRule(rule, counters.get(rule) ?? null))
  }

  /** The first terminal decision for a request, or a refusal by a rate limit; allow when no rule decides. */
  evaluate (facts: RequestFacts, nowMs: number): Decision {
    const scan = new Scan(facts)
    for (let step = this.#next(scan, 0); step !== null; step = this.#next(scan, step.index + 1)) {
      if (step.decision !== null) return step.decision
      const limiter = step.rule.limiter!
      const retryAfterS = limiter.hit(step.key, nowMs)
      if (retryAfterS !== 0) return rateLimited(step.rule, limiter, retryAfterS)
    }
    return NO_MATCH
  }

  /**
   * As evaluate, with the rate limits counted by `fleet` (cluster mode: one count for every
   * process of the fleet) instead of this process's counters.
   */
  async evaluateInFleet (facts: RequestFacts, nowMs: number, fleet: FleetRateCounter): Promise<Decision> {
    const scan = new Scan(facts)
    for (let step = this.#next(scan, 0); step !== null; step = this.#next(scan, step.index + 1)) {
      if (step.decision !== null) return step.decision
      const limiter = step.rule.limiter!
      const retryAfterS = await fleet.hit(`${step.rule.id}:${limiter.max}:${limiter.windowMs}:${step.key}`, limiter.max, limiter.windowMs, nowMs)
      if (retryAfterS !== 0) return rateLimited(step.rule, limiter, retryAfterS)
    }
    return NO_MATCH
  }

  /** The first rule from `from` on that matches: its decision, or the key to count it under (a rate limit). */
  #next (scan: Scan, from: number): { index: number, rule: CompiledRule, decision: Decision | null, key: string } | null {
    const { method, identity } = scan.facts
    const roleBit = scan.roleBit
    const rules = this.#compiled
    for (let i = from; i < rules.length; i++) {
      const rule = rules[i]
      if (rule.methods !== null && !rule.methods.has(method)) continue
      if (rule.roles !== 0 && (rule.roles & roleBit) === 0) continue
      if (rule.principals !== null && (identity?.kind !== 'principal' || !rule.principals.has(identity.id))) continue
      if (rule.path !== null && !rule.path.test(scan.path())) continue
      if (rule.cidrs !== null) {
        const address = scan.address()
        if (address === null || !anyContains(rule.cidrs, address)) continue
      }
      if (rule.headers !== null && !headersMatch(rule.headers, scan.facts.headers)) continue
      if (rule.decision !== null) return { index: i, rule, decision: rule.decision, key: '' }
      let key: string
      if (rule.limitKey === 'principal' && identity?.kind === 'principal') key = identity.id
      else if (rule.limitKey === 'principal' && identity?.kind === 'admin') key = 'admin'
      else key = scan.addressKey()
      return { index: i, rule, decision: null, key }
    }
    return null
  }
}

/** Counts rate-limited requests for the whole fleet (src/cluster/fleet-rate-counter.ts). */
export interface FleetRateCounter {
  /** As RateCounters.hit, for the counter `key` of a limit of `max` per `windowMs`. */
  hit (key: string, max: number, windowMs: number, nowMs: number): Promise<number>
}

function rateLimited (rule: CompiledRule, limiter: RateCounters, retryAfterS: number): Decision {
  return { type: 'rate_limited', ruleId: rule.id, retryAfterS, max: limiter.max, windowMs: limiter.windowMs }
}

/** What evaluating one request works out about it, each at most once and only when a rule needs it. */
class Scan {
  readonly facts: RequestFacts
  readonly roleBit: number
  #path: string | undefined
  #address: Address | null | undefined
  #addressKey: string | undefined

  constructor (facts: RequestFacts) {
    this.facts = facts
    const { identity } = facts
    this.roleBit = identity == null ? ROLE_BITS.anonymous : identity.kind === 'principal' ? ROLE_BITS[identity.role] : ROLE_BITS[identity.kind]
  }

  path (): string {
    return this.#path ??= requestPath(this.facts.url)
  }

  address (): Address | null {
    if (this.#address === undefined) this.#address = this.facts.ip === undefined ? null : parseAddress(this.facts.ip)
    return this.#address
  }

  addressKey (): string {
    return this.#addressKey ??= this.facts.ip === undefined ? 'unknown' : addressKey(this.facts.ip)
  }
}

function compileRule (rule: Rule, limiter: RateCounters | null): CompiledRule {
  const { match, action } = rule
  let methods: Set<string> | null = null
  if (match.methods !== undefined) {
    methods = new Set(match.methods)
    if (methods.has('GET')) methods.add('HEAD')
  }
  let roles = 0
  for (const role of match.roles ?? []) roles |= ROLE_BITS[role]
  let decision: Decision | null
  switch (action.type) {
    case 'allow': decision = Object.freeze({ type: 'allow', ruleId: rule.id }); break
    case 'block': decision = Object.freeze({ type: 'block', ruleId: rule.id, reason: action.reason }); break
    case 'redirect': decision = Object.freeze({ type: 'redirect', ruleId: rule.id, location: action.location }); break
    default: decision = null
  }
  if (decision === null && limiter === null) throw new Error(`rate-limit rule ${rule.id} was compiled without counters`)
  return {
    id: rule.id,
    methods,
    roles,
    principals: match.principals === undefined ? null : new Set(match.principals),
    path: match.path === undefined ? null : compilePathPattern(match.path),
    cidrs: match.cidrs === undefined ? null : match.cidrs.map(parseCidr),
    headers: match.headers === undefined ? null : Object.entries(match.headers).map(compileHeader),
    decision,
    limiter: decision === null ? limiter : null,
    limitKey: action.type === 'rate_limit' ? action.key : 'address',
  }
}

function compileHeader ([name, value]: [string, string]): HeaderMatcher {
  const regex = REGEX_VALUE.exec(value)
  return {
    name: name.toLowerCase(),
    exact: regex === null ? value : null,
    regex: regex === null ? null : new RegExp(regex[1], regex[2]),
  }
}

function anyContains (cidrs: readonly Cidr[], address: Address): boolean {
  for (let i = 0; i < cidrs.length; i++) {
    if (cidrContains(cidrs[i], address)) return true
  }
  return false
}

/** Every named header must be present and match; a repeated header is matched as its values joined by ", ". */
function headersMatch (matchers: readonly HeaderMatcher[], headers: IncomingHttpHeaders): boolean {
  for (let i = 0; i < matchers.length; i++) {
    const matcher = matchers[i]
    const raw = headers[matcher.name]
    if (raw === undefined) return false
    const value = typeof raw === 'string' ? raw : raw.join(', ')
    if (matcher.exact !== null ? value !== matcher.exact : !matcher.regex!.test(value)) return false
  }
  return true
}

// ---------------------------------------------------------------------------------------
// Helpers.

function fail (field: string, problem: string): never {
  throw new PolicyValidationError(field, problem)
}

function requirePresent (input: unknown, field: string): void {
  if (input === undefined) fail(field, 'is required')
}

function requireObject (input: unknown, field: string): Record<string, unknown> {
  requirePresent(input, field)
  if (typeof input !== 'object' || input === null || Array.isArray(input)) fail(field, `must be an object, got ${typeName(input)}`)
  return input as Record<string, unknown>
}

function requireKnownKeys (object: Record<string, unknown>, known: readonly string[], field: string, context = ''): void {
  for (const key of Object.keys(object)) {
    if (!known.includes(key)) fail(field, `has an unknown property ${JSON.stringify(key)}${context}`)
  }
}

function requireList<T> (input: unknown, field: string, itemsMax: number, check: (value: unknown, field: string) => T): T[] {
  if (!Array.isArray(input)) fail(field, `must be an array, got ${typeName(input)}`)
  if (input.length === 0) fail(field, 'must not be empty (leave it out to match any)')
  if (input.length > itemsMax) fail(field, `must hold at most ${itemsMax} items, got ${input.length}`)
  const seen = new Set<unknown>()
  return input.map((value, i) => {
    const item = check(value, `${field}.${i}`)
    if (seen.has(item)) fail(`${field}.${i}`, `repeats ${JSON.stringify(item)}`)
    seen.add(item)
    return item
  })
}

function requireText (input: unknown, field: string, charsMax: number): string {
  requirePresent(input, field)
  if (typeof input !== 'string') fail(field, `must be a string, got ${typeName(input)}`)
  const chars = [...input].length
  if (chars < 1 || chars > charsMax) fail(field, `must be 1 to ${charsMax} characters, got ${chars}`)
  if (CONTROL.test(input)) fail(field, 'must not contain control characters')
  return input
}

function requireInteger (input: unknown, field: string, min: number, max: number): number {
  requirePresent(input, field)
  if (typeof input !== 'number' || !Number.isSafeInteger(input) || input < min || input > max) {
    fail(field, `must be an integer from ${min} to ${max}, got ${preview(input)}`)
  }
  return input
}

function orderRule (spec: RuleSpec): RuleSpec {
  const out: RuleSpec = {} as RuleSpec
  if (spec.id !== undefined) out.id = spec.id
  if (spec.description !== undefined) out.description = spec.description
  const match: RuleMatch = {}
  for (const key of MATCH_KEYS as Array<keyof RuleMatch>) {
    if (spec.match[key] !== undefined) (match as Record<string, unknown>)[key] = spec.match[key]
  }
  out.match = match
  out.action = spec.action
  return out
}

function typeName (value: unknown): string {
  if (value === undefined) return 'nothing'
  if (value === null) return 'null'
  if (Array.isArray(value)) return 'an array'
  return typeof value === 'object' ? 'an object' : `a ${typeof value}`
}

/** A value for an error message, cut short: messages echo input, never all of it. */
function preview (value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value.length > 64 ? value.slice(0, 64) + '…' : value)
  if (typeof value === 'number' || typeof value === 'boolean' || value === null) return String(value)
  return typeName(value)
}

function deepFreeze<T> (value: T): T {
  if (typeof value === 'object' && value !== null) {
    for (const inner of Object.values(value)) deepFreeze(inner)
    Object.freeze(value)
  }
  return value
}
