/**
 * Policy rules in SQLite (`policy_rules`, migration 4) and the compiled set that requests
 * are evaluated against.
 *
 * Every change is validated in full before anything is written, runs in one IMMEDIATE
 * transaction together with its audit entry, and only after the commit is the compiled set
 * swapped for the new one: a single assignment, so a request sees the old set or the new,
 * never a mix, and a refused change leaves both the table and the active set as they were.
 */
import type { Database, Statement } from 'better-sqlite3'
import { ConflictError, NotFoundError } from '../errors.js'
import type { AuditLog } from './audit.js'
import { PolicyValidationError } from './errors.js'
import {
  CompiledPolicy, DEFAULT_RULES, RateLimitState, RULES_MAX, newRuleId, requireDistinctIds, validateRule, validateRuleId,
  validateRuleSet, type Decision, type FleetRateCounter, type RequestFacts, type Rule, type RuleAction, type RuleMatch, type RuleSpec,
} from './policy.js'

/** Largest rule set, in bytes of the rules' stored JSON. */
export const RULE_SET_BYTES_MAX = 256 * 1024

export interface PolicyStoreOptions {
  audit: AuditLog
  /**
   * Seed `defaults` into a database whose policies were never set (no rules, and no
   * `policy.*` entry in the audit log). An admin who deleted every rule keeps an empty set.
   * Default true.
   */
  seedDefaults?: boolean
  /** The rules seeded; DEFAULT_RULES when absent. */
  defaults?: readonly RuleSpec[]
  /** Rate-limit keys kept in memory across all rules. */
  rateLimitKeysMax?: number
  /**
   * Poll for rules changed by another process sharing the database, in ms (PRAGMA
   * data_version: a cheap read). 0, the default, does not poll.
   */
  refreshIntervalMs?: number
  /** Told of a failed refresh (the active set stays as it was). */
  onRefreshError?: (err: unknown) => void
}

/** A rule as the API shows it. */
export interface StoredRule {
  id: string
  /** 1-based place in evaluation order. */
  position: number
  description: string | null
  match: RuleMatch
  action: RuleAction
  /** ms since the epoch. */
  created: number
  updated: number
}

/** Who makes a change, for its audit entry. */
export interface ChangeContext {
  actor: string
  source?: string | null
}

interface Row {
  id: string
  position: number
  rule: string
  created_ms: number
  updated_ms: number
}

const PATCH_KEYS = ['description', 'match', 'action', 'position']

export class PolicyStore {
  readonly #db: Database
  readonly #audit: AuditLog
  readonly #rateLimits: RateLimitState
  readonly #all: Statement<[], Row>
  readonly #get: Statement<[string], Row>
  readonly #insert: Statement<[string, number, string, number, number]>
  readonly #update: Statement<[string, number, string]>
  readonly #delete: Statement<[string]>
  readonly #deleteAll: Statement<[]>
  readonly #negatePositions: Statement<[]>
  readonly #setPosition: Statement<[number, string]>
  readonly #policyAudited: Statement<[], { one: number }>
  #active: CompiledPolicy
  /** The rows the active set was compiled from, to tell whether a refresh changes anything. */
  #activeSignature = ''
  #timer: NodeJS.Timeout | null = null
  #dataVersion = 0
  #closed = false

  constructor (db: Database, options: PolicyStoreOptions) {
    this.#db = db
    this.#audit = options.audit
    this.#rateLimits = new RateLimitState(options.rateLimitKeysMax)
    this.#all = db.prepare('SELECT id, position, rule, created_ms, updated_ms FROM policy_rules ORDER BY position')
    this.#get = db.prepare('SELECT id, position, rule, created_ms, updated_ms FROM policy_rules WHERE id = ?')
    this.#insert = db.prepare('INSERT INTO policy_rules (id, position, rule, created_ms, updated_ms) VALUES (?, ?, ?, ?, ?)')
    this.#update = db.prepare('UPDATE policy_rules SET rule = ?, updated_ms = ? WHERE id = ?')
    this.#delete = db.prepare('DELETE FROM policy_rules WHERE id = ?')
    this.#deleteAll = db.prepare('DELETE FROM policy_rules')
    // Positions are UNIQUE and SQLite checks that row by row, so a renumbering first moves
    // every row out of the way (to distinct negative positions), then sets the final ones.
    this.#negatePositions = db.prepare('UPDATE policy_rules SET position = -position - 1')
    this.#setPosition = db.prepare('UPDATE policy_rules SET position = ? WHERE id = ?')
    this.#policyAudited = db.prepare("SELECT 1 AS one FROM audit_log WHERE action >= 'policy.' AND action < 'policy/' LIMIT 1")

    if (options.seedDefaults ?? true) this.#seed(options.defaults ?? DEFAULT_RULES)
    const rows = this.#all.all()
    // A stored rule that does not validate (edited by hand, or written by a newer hub) stops
    // the hub: skipping it could drop a block rule and open what it closed.
    this.#active = this.#compile(rowsToRules(rows))
    this.#activeSignature = signature(rows)
    this.#dataVersion = this.#readDataVersion()

    const refreshMs = options.refreshIntervalMs ?? 0
    if (refreshMs > 0) {
      this.#timer = setInterval(() => {
        try {
          this.refresh()
        } catch (err) {
          options.onRefreshError?.(err)
        }
      }, refreshMs)
      this.#timer.unref()
    }
  }

  /** The compiled set in force. */
  get active (): CompiledPolicy {
    return this.#active
  }

  /** Evaluates a request against the set in force. */
  evaluate (facts: RequestFacts, nowMs: number): Decision {
    return this.#active.evaluate(facts, nowMs)
  }

  /** Evaluates a request against the set in force, its rate limits counted for the whole fleet. */
  evaluateInFleet (facts: RequestFacts, nowMs: number, fleet: FleetRateCounter): Promise<Decision> {
    return this.#active.evaluateInFleet(facts, nowMs, fleet)
  }

  /** The stored rules, in evaluation order. */
  list (): StoredRule[] {
    return this.#all.all().map(toStoredRule)
  }

  get (id: string): StoredRule | undefined {
    const row = this.#get.get(id)
    return row === undefined ? undefined : toStoredRule(row)
  }

  /**
   * Replaces the whole set at once. `input` is an array of rules (ids optional); `field`
   * names it in error messages. Rules keeping their id keep their creation time.
   */
  replaceAll (input: unknown, context: ChangeContext, field = 'rules'): StoredRule[] {
    const specs = validateRuleSet(input, field)
    const rules = specs.map(withId)
    return this.#change(context, (rows, nowMs) => {
      const created = new Map(rows.map(row => [row.id, row.created_ms]))
      this.#deleteAll.run()
      rules.forEach((rule, i) => {
        this.#insert.run(rule.id, i + 1, ruleJson(rule), created.get(rule.id) ?? nowMs, nowMs)
      })
      const kept = new Set(rules.map(rule => rule.id))
      return {
        action: 'policy.replace',
        target: null,
        detail: { rules, removed: rows.filter(row => !kept.has(row.id)).map(row => row.id) },
        result: () => this.list(),
      }
    }, field)
  }

  /** Adds a rule at `position` (1-based; the end when absent). 409 when its id is taken. */
  create (input: unknown, position: number | undefined, context: ChangeContext, field = 'rule'): StoredRule {
    const rule = withId(validateRule(input, field))
    return this.#change(context, (rows, nowMs) => {
      if (rows.length >= RULES_MAX) throw new PolicyValidationError(field, `cannot be added: the set already holds ${RULES_MAX} rules`)
      if (rows.some(row => row.id === rule.id)) throw new ConflictError(`a rule with id ${JSON.stringify(rule.id)} exists already`)
      const index = (position === undefined ? rows.length + 1 : requirePosition(position, rows.length + 1, `${field}.position`)) - 1
      this.#negatePositions.run()
      this.#insert.run(rule.id, 0, ruleJson(rule), nowMs, nowMs)
      const order = rows.map(row => row.id)
      order.splice(index, 0, rule.id)
      this.#writeOrder(order)
      return { action: 'policy.create', target: rule.id, detail: { rule, position: index + 1 }, result: () => this.get(rule.id)! }
    }, field)
  }

  /**
   * Changes a rule: `patch` may replace its description (null removes it), match or action,
   * each as a whole, and move it to another position. 404 for an unknown id.
   */
  update (id: string, patch: unknown, context: ChangeContext, field = 'patch'): StoredRule {
    if (typeof patch !== 'object' || patch === null || Array.isArray(patch)) throw new PolicyValidationError(field, 'must be an object')
    const changes = patch as Record<string, unknown>
    for (const key of Object.keys(changes)) {
      if (!PATCH_KEYS.includes(key)) throw new PolicyValidationError(field, `has an unknown property ${JSON.stringify(key)}`)
    }
    if (Object.keys(changes).length === 0) throw new PolicyValidationError(field, `must change at least one of ${PATCH_KEYS.join(', ')}`)
    return this.#change(context, (rows, nowMs) => {
      const index = rows.findIndex(row => row.id === id)
      if (index === -1) throw new NotFoundError(`no policy rule with id ${JSON.stringify(id)}`)
      const before = rowToRule(rows[index])
      const merged: Record<string, unknown> = {
        id,
        match: changes.match === undefined ? before.match : changes.match,
        action: changes.action === undefined ? before.action : changes.action,
      }
      const description = changes.description === undefined ? before.description : changes.description
      if (description !== null && description !== undefined) merged.description = description
      const after = validateRule(merged, field) as Rule
      this.#update.run(ruleJson(after), nowMs, id)
      const to = changes.position === undefined ? index + 1 : requirePosition(changes.position, rows.length, `${field}.position`)
      if (to !== index + 1) {
        const order = rows.map(row => row.id)
        order.splice(index, 1)
        order.splice(to - 1, 0, id)
        this.#negatePositions.run()
        this.#writeOrder(order)
      }
      return { action: 'policy.update', target: id, detail: { before, after, position: { from: index + 1, to } }, result: () => this.get(id)! }
    }, field)
  }

  /** Removes a rule and returns it. 404 for an unknown id. */
  delete (id: string, context: ChangeContext): StoredRule {
    return this.#change(context, (rows) => {
      const index = rows.findIndex(row => row.id === id)
      if (index === -1) throw new NotFoundError(`no policy rule with id ${JSON.stringify(id)}`)
      const removed = toStoredRule(rows[index])
      this.#delete.run(id)
      this.#negatePositions.run()
      this.#writeOrder(rows.filter(row => row.id !== id).map(row => row.id))
      return { action: 'policy.delete', target: id, detail: { rule: rowToRule(rows[index]), position: index + 1 }, result: () => removed }
    }, 'id')
  }

  /**
   * Reloads the rules when another connection changed the database, and swaps in the new set
   * if the rules differ. Returns whether the active set changed. Throws if the stored rules
   * do not validate, keeping the active set.
   */
  refresh (): boolean {
    const version = this.#readDataVersion()
    if (version === this.#dataVersion) return false
    this.#dataVersion = version
    const rows = this.#all.all()
    const next = signature(rows)
    if (next === this.#activeSignature) return false
    this.#active = this.#compile(rowsToRules(rows))
    this.#activeSignature = next
    return true
  }

  /** Stops polling; safe to call more than once. The database belongs to the caller. */
  async close (): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    if (this.#timer !== null) clearInterval(this.#timer)
    this.#timer = null
  }

  #change<T> (context: ChangeContext, write: (rows: Row[], nowMs: number) => {
    action: string
    target: string | null
    detail: Record<string, unknown>
    result: () => T
  }, field: string): T {
    // The swap after commit would be wrong if an outer transaction could still roll back.
    if (this.#db.inTransaction) throw new Error('policy changes must not run inside another transaction')
    const { rules, rows, result } = this.#db.transaction(() => {
      const nowMs = Date.now()
      const change = write(this.#all.all(), nowMs)
      const rowsAfter = this.#all.all()
      const bytes = rowsAfter.reduce((sum, row) => sum + Buffer.byteLength(row.rule) + row.id.length, 0)
      if (bytes > RULE_SET_BYTES_MAX) throw new PolicyValidationError(field, `would make the rule set ${bytes} bytes of JSON; at most ${RULE_SET_BYTES_MAX} are allowed`)
      // Read back what is now stored and validate it again, so the set compiled after the
      // commit is exactly the table's content.
      const rulesAfter = rowsToRules(rowsAfter)
      this.#audit.append({ actor: context.actor, source: context.source ?? null, action: change.action, target: change.target, detail: change.detail, nowMs })
      return { rules: rulesAfter, rows: rowsAfter, result: change.result() }
    }).immediate()
    this.#active = this.#compile(rules)
    this.#activeSignature = signature(rows)
    // Our own commit moved data_version's baseline only for other connections; reading it
    // again keeps the next refresh from reloading what is already active.
    this.#dataVersion = this.#readDataVersion()
    return result
  }

  #seed (defaults: readonly RuleSpec[]): void {
    const specs = validateRuleSet(defaults, 'defaults')
    const rules = specs.map(withId)
    this.#db.transaction(() => {
      if (this.#all.all().length > 0 || this.#policyAudited.get() !== undefined) return
      const nowMs = Date.now()
      rules.forEach((rule, i) => this.#insert.run(rule.id, i + 1, ruleJson(rule), nowMs, nowMs))
      this.#audit.append({ actor: 'hub', action: 'policy.seed', target: null, detail: { rules }, nowMs })
    }).immediate()
  }

  #writeOrder (ids: readonly string[]): void {
    ids.forEach((id, i) => this.#setPosition.run(i + 1, id))
  }

  #compile (rules: Rule[]): CompiledPolicy {
    requireDistinctIds(rules, 'policy_rules')
    return new CompiledPolicy(rules, this.#rateLimits.assign(rules))
  }

  #readDataVersion (): number {
    return this.#db.pragma('data_version', { simple: true }) as number
  }
}

function withId (spec: RuleSpec): Rule {
  return spec.id === undefined ? { id: newRuleId(), ...spec } : spec as Rule
}

/** What the `rule` column holds: the rule without its id, keys in canonical order. */
function ruleJson (rule: Rule): string {
  const { id: _id, ...rest } = rule
  return JSON.stringify(rest)
}

function rowToRule (row: Row): Rule {
  let parsed: unknown
  try {
    parsed = JSON.parse(row.rule)
  } catch {
    throw new PolicyValidationError(`policy_rules[${row.id}].rule`, 'is not JSON')
  }
  const body = typeof parsed === 'object' && parsed !== null ? parsed : {}
  return validateRule({ ...body, id: validateRuleId(row.id, `policy_rules[${row.id}].id`) }, `policy_rules[${row.id}]`) as Rule
}

function rowsToRules (rows: Row[]): Rule[] {
  return rows.map(rowToRule)
}

function toStoredRule (row: Row): StoredRule {
  const rule = rowToRule(row)
  return {
    id: rule.id,
    position: row.position,
    description: rule.description ?? null,
    match: rule.match,
    action: rule.action,
    created: row.created_ms,
    updated: row.updated_ms,
  }
}

function requirePosition (input: unknown, max: number, field: string): number {
  if (typeof input !== 'number' || !Number.isSafeInteger(input) || input < 1 || input > max) {
    throw new PolicyValidationError(field, `must be an integer from 1 to ${max}, got ${typeof input === 'number' ? input : typeof input}`)
  }
  return input
}

function signature (rows: Row[]): string {
  return rows.map(row => `${row.id}\u0000${row.rule}`).join('\u0001')
}
