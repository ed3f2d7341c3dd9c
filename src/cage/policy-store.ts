/**
 * Policy rules in the hub's database (`policy_rules`, migration 4) and the compiled set that
 * requests are evaluated against.
 *
 * Every change is validated in full before anything is written, runs in one transaction
 * together with its audit entry, and only after the commit is the compiled set swapped for
 * the new one: a single assignment, so a request sees the old set or the new, never a mix,
 * and a refused change leaves both the table and the active set as they were. A change
 * must therefore not be made inside another transaction, which it would join: if that one
 * rolled back, the set in force would no longer be the table's.
 *
 * Several processes may share the database (one SQLite file, or a fleet on PostgreSQL).
 * Each change takes the `policy_rules` lock, so two processes never interleave positions,
 * and bumps the `policy_rules` change counter, which the others compare on refresh to
 * learn, with one cheap read, that their compiled set is stale.
 */
import { ConflictError, NotFoundError } from '../errors.js'
import { bumpChangeCounter, readChangeCounter } from '../store/change-counters.js'
import type { SqlDatabase } from '../store/sql.js'
import type { AuditLog } from './audit.js'
import { PolicyValidationError } from './errors.js'
import {
  CompiledPolicy, DEFAULT_RULES, RateLimitState, RULES_MAX, newRuleId, requireDistinctIds, validateRule, validateRuleId,
  validateRuleSet, type Decision, type FleetRateCounter, type RequestFacts, type Rule, type RuleAction, type RuleMatch, type RuleSpec,
} from './policy.js'

/** Largest rule set, in bytes of the rules' stored JSON. */
export const RULE_SET_BYTES_MAX = 256 * 1024
/** The name of the lock every change holds and of the change counter it bumps. */
const POLICY_RULES_COUNTER = 'policy_rules'

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
   * Look for rules changed by another process sharing the database every so many ms (one
   * read of the `policy_rules` change counter; the rules are read again only when it
   * moved). 0, the default, does not look.
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

const COLUMNS = 'id, position, rule, created_ms, updated_ms'

export class PolicyStore {
  readonly #db: SqlDatabase
  readonly #audit: AuditLog
  readonly #rateLimits: RateLimitState
  #active: CompiledPolicy
  /** The rows the active set was compiled from, to tell whether a refresh changes anything. */
  #activeSignature = ''
  /**
   * The change counter the active set reflects (at least). Only a larger value is applied,
   * so a refresh that read the table before this process's own change committed cannot
   * put the older set back after the change swapped in the newer one.
   */
  #version = 0
  #timer: NodeJS.Timeout | null = null
  /** The refresh the timer started, if it is still running; close waits for it. */
  #refreshing: Promise<void> | null = null
  #closed = false

  /**
   * Opens the store: seeds the defaults into a database whose policies were never set (when
   * asked), loads and compiles the stored rules, and starts looking for other processes'
   * changes when `refreshIntervalMs` is set. A stored rule that does not validate (edited
   * by hand, or written by a newer hub) makes it reject: skipping the rule could drop a
   * block rule and open what it closed.
   */
  static async open (db: SqlDatabase, options: PolicyStoreOptions): Promise<PolicyStore> {
    const store = new PolicyStore(db, options)
    if (options.seedDefaults ?? true) await store.#seed(options.defaults ?? DEFAULT_RULES)
    const version = await readChangeCounter(db, POLICY_RULES_COUNTER)
    const rows = await store.#rows()
    store.#active = store.#compile(rowsToRules(rows))
    store.#activeSignature = signature(rows)
    store.#version = version
    store.#scheduleRefresh(options.refreshIntervalMs ?? 0, options.onRefreshError)
    return store
  }

  private constructor (db: SqlDatabase, options: PolicyStoreOptions) {
    this.#db = db
    this.#audit = options.audit
    this.#rateLimits = new RateLimitState(options.rateLimitKeysMax)
    this.#active = new CompiledPolicy([], new Map())
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
  async list (): Promise<StoredRule[]> {
    return (await this.#rows()).map(toStoredRule)
  }

  async get (id: string): Promise<StoredRule | undefined> {
    const row = await this.#db.get<Row>(`SELECT ${COLUMNS} FROM policy_rules WHERE id = ?`, [id])
    return row === undefined ? undefined : toStoredRule(row)
  }

  /**
   * Replaces the whole set at once. `input` is an array of rules (ids optional); `field`
   * names it in error messages. Rules keeping their id keep their creation time.
   */
  async replaceAll (input: unknown, context: ChangeContext, field = 'rules'): Promise<StoredRule[]> {
    const specs = validateRuleSet(input, field)
    const rules = specs.map(withId)
    return this.#change(context, async (rows, nowMs) => {
      const created = new Map(rows.map(row => [row.id, row.created_ms]))
      await this.#db.run('DELETE FROM policy_rules')
      for (const [i, rule] of rules.entries()) await this.#insert(rule, i + 1, created.get(rule.id) ?? nowMs, nowMs)
      const kept = new Set(rules.map(rule => rule.id))
      return {
        action: 'policy.replace',
        target: null,
        detail: { rules, removed: rows.filter(row => !kept.has(row.id)).map(row => row.id) },
        result: rowsAfter => rowsAfter.map(toStoredRule),
      }
    }, field)
  }

  /** Adds a rule at `position` (1-based; the end when absent). 409 when its id is taken. */
  async create (input: unknown, position: number | undefined, context: ChangeContext, field = 'rule'): Promise<StoredRule> {
    const rule = withId(validateRule(input, field))
    return this.#change(context, async (rows, nowMs) => {
      if (rows.length >= RULES_MAX) throw new PolicyValidationError(field, `cannot be added: the set already holds ${RULES_MAX} rules`)
      if (rows.some(row => row.id === rule.id)) throw new ConflictError(`a rule with id ${JSON.stringify(rule.id)} exists already`)
      const index = (position === undefined ? rows.length + 1 : requirePosition(position, rows.length + 1, `${field}.position`)) - 1
      await this.#negatePositions()
      await this.#insert(rule, 0, nowMs, nowMs)
      const order = rows.map(row => row.id)
      order.splice(index, 0, rule.id)
      await this.#writeOrder(order)
      return { action: 'policy.create', target: rule.id, detail: { rule, position: index + 1 }, result: rowsAfter => storedRuleOf(rowsAfter, rule.id) }
    }, field)
  }

  /**
   * Changes a rule: `patch` may replace its description (null removes it), match or action,
   * each as a whole, and move it to another position. 404 for an unknown id.
   */
  async update (id: string, patch: unknown, context: ChangeContext, field = 'patch'): Promise<StoredRule> {
    if (typeof patch !== 'object' || patch === null || Array.isArray(patch)) throw new PolicyValidationError(field, 'must be an object')
    const changes = patch as Record<string, unknown>
    for (const key of Object.keys(changes)) {
      if (!PATCH_KEYS.includes(key)) throw new PolicyValidationError(field, `has an unknown property ${JSON.stringify(key)}`)
    }
    if (Object.keys(changes).length === 0) throw new PolicyValidationError(field, `must change at least one of ${PATCH_KEYS.join(', ')}`)
    return this.#change(context, async (rows, nowMs) => {
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
      const to = changes.position === undefined ? index + 1 : requirePosition(changes.position, rows.length, `${field}.position`)
      await this.#db.run('UPDATE policy_rules SET rule = ?, updated_ms = ? WHERE id = ?', [ruleJson(after), nowMs, id])
      if (to !== index + 1) {
        const order = rows.map(row => row.id)
        order.splice(index, 1)
        order.splice(to - 1, 0, id)
        await this.#negatePositions()
        await this.#writeOrder(order)
      }
      return { action: 'policy.update', target: id, detail: { before, after, position: { from: index + 1, to } }, result: rowsAfter => storedRuleOf(rowsAfter, id) }
    }, field)
  }

  /** Removes a rule and returns it. 404 for an unknown id. */
  async delete (id: string, context: ChangeContext): Promise<StoredRule> {
    return this.#change(context, async (rows) => {
      const index = rows.findIndex(row => row.id === id)
      if (index === -1) throw new NotFoundError(`no policy rule with id ${JSON.stringify(id)}`)
      const removed = toStoredRule(rows[index])
      await this.#db.run('DELETE FROM policy_rules WHERE id = ?', [id])
      await this.#negatePositions()
      await this.#writeOrder(rows.filter(row => row.id !== id).map(row => row.id))
      return { action: 'policy.delete', target: id, detail: { rule: rowToRule(rows[index]), position: index + 1 }, result: () => removed }
    }, 'id')
  }

  /**
   * Reloads the rules when another process changed them (the change counter moved), and
   * swaps in the new set if the rules differ. Resolves to whether the active set changed.
   * Rejects if the stored rules do not validate, keeping the active set; that change is
   * then reported once, not again on every later refresh.
   */
  async refresh (): Promise<boolean> {
    // The counter is read before the rows, so the rows are at least as new as the version
    // recorded for them: a change committed in between is loaded again next time, never missed.
    const version = await readChangeCounter(this.#db, POLICY_RULES_COUNTER)
    if (version === this.#version) return false
    const rows = await this.#rows()
    // From here on nothing awaits, so no change of this process can land in between.
    if (version <= this.#version) return false
    this.#version = version
    const next = signature(rows)
    if (next === this.#activeSignature) return false
    this.#active = this.#compile(rowsToRules(rows))
    this.#activeSignature = next
    return true
  }

  /**
   * Stops looking for changes and waits for a refresh under way; safe to call more than
   * once. The database belongs to the caller.
   */
  async close (): Promise<void> {
    if (!this.#closed) {
      this.#closed = true
      if (this.#timer !== null) clearTimeout(this.#timer)
      this.#timer = null
    }
    await this.#refreshing
  }

  /**
   * Refreshes every `intervalMs`, counted from the end of the previous refresh, so two never
   * overlap however slow the database is.
   */
  #scheduleRefresh (intervalMs: number, onError: ((err: unknown) => void) | undefined): void {
    if (intervalMs <= 0 || this.#closed) return
    this.#timer = setTimeout(() => {
      this.#timer = null
      this.#refreshing = this.refresh().then(() => {}, err => { onError?.(err) }).finally(() => {
        this.#refreshing = null
        this.#scheduleRefresh(intervalMs, onError)
      })
    }, intervalMs)
    this.#timer.unref()
  }

  async #change<T> (context: ChangeContext, write: (rows: Row[], nowMs: number) => Promise<{
    action: string
    target: string | null
    detail: Record<string, unknown>
    result: (rowsAfter: Row[]) => T
  }>, field: string): Promise<T> {
    // Called inside another transaction, this one would join it, and the set swapped in
    // below would stay in force even if that transaction rolled back: callers must not.
    const { rules, rows, version, result } = await this.#db.transaction(async () => {
      // Positions are read, shifted and rewritten: another process's change must not
      // interleave (PostgreSQL; SQLite's write transaction is already exclusive).
      await this.#db.lock(POLICY_RULES_COUNTER)
      const nowMs = Date.now()
      const change = await write(await this.#rows(), nowMs)
      const rowsAfter = await this.#rows()
      const bytes = rowsAfter.reduce((sum, row) => sum + Buffer.byteLength(row.rule) + row.id.length, 0)
      if (bytes > RULE_SET_BYTES_MAX) throw new PolicyValidationError(field, `would make the rule set ${bytes} bytes of JSON; at most ${RULE_SET_BYTES_MAX} are allowed`)
      // Read back what is now stored and validate it again, so the set compiled after the
      // commit is exactly the table's content.
      const rulesAfter = rowsToRules(rowsAfter)
      await this.#audit.append({ actor: context.actor, source: context.source ?? null, action: change.action, target: change.target, detail: change.detail, nowMs })
      await bumpChangeCounter(this.#db, POLICY_RULES_COUNTER)
      // Exact: every bump of this counter happens under the lock held here.
      const versionAfter = await readChangeCounter(this.#db, POLICY_RULES_COUNTER)
      return { rules: rulesAfter, rows: rowsAfter, version: versionAfter, result: change.result(rowsAfter) }
    })
    // A larger version is in force already only if a later change of this process (which
    // read this one's rows) swapped its set in first.
    if (version > this.#version) {
      this.#active = this.#compile(rules)
      this.#activeSignature = signature(rows)
      this.#version = version
    }
    return result
  }

  async #seed (defaults: readonly RuleSpec[]): Promise<void> {
    const specs = validateRuleSet(defaults, 'defaults')
    const rules = specs.map(withId)
    await this.#db.transaction(async () => {
      // Two processes starting together on one database seed once: the second waits here
      // and then finds the first one's rules.
      await this.#db.lock(POLICY_RULES_COUNTER)
      if ((await this.#db.get('SELECT id FROM policy_rules LIMIT 1')) !== undefined) return
      // LIKE rather than a range on action: PostgreSQL may order '.' and '/' by a locale's
      // collation, which ignores punctuation.
      if ((await this.#db.get("SELECT seq FROM audit_log WHERE action LIKE 'policy.%' LIMIT 1")) !== undefined) return
      const nowMs = Date.now()
      for (const [i, rule] of rules.entries()) await this.#insert(rule, i + 1, nowMs, nowMs)
      await this.#audit.append({ actor: 'hub', action: 'policy.seed', target: null, detail: { rules }, nowMs })
      await bumpChangeCounter(this.#db, POLICY_RULES_COUNTER)
    })
  }

  #rows (): Promise<Row[]> {
    return this.#db.all<Row>(`SELECT ${COLUMNS} FROM policy_rules ORDER BY position`)
  }

  async #insert (rule: Rule, position: number, createdMs: number, updatedMs: number): Promise<void> {
    await this.#db.run('INSERT INTO policy_rules (id, position, rule, created_ms, updated_ms) VALUES (?, ?, ?, ?, ?)', [rule.id, position, ruleJson(rule), createdMs, updatedMs])
  }

  /**
   * Positions are UNIQUE and SQLite checks that row by row, so a renumbering first moves
   * every row out of the way (to distinct negative positions), then sets the final ones.
   */
  async #negatePositions (): Promise<void> {
    await this.#db.run('UPDATE policy_rules SET position = -position - 1')
  }

  async #writeOrder (ids: readonly string[]): Promise<void> {
    for (const [i, id] of ids.entries()) await this.#db.run('UPDATE policy_rules SET position = ? WHERE id = ?', [i + 1, id])
  }

  #compile (rules: Rule[]): CompiledPolicy {
    requireDistinctIds(rules, 'policy_rules')
    return new CompiledPolicy(rules, this.#rateLimits.assign(rules))
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

/** The stored rule `id` among `rows`, which hold it. */
function storedRuleOf (rows: Row[], id: string): StoredRule {
  const row = rows.find(candidate => candidate.id === id)
  if (row === undefined) throw new Error(`policy rule ${id} is missing right after it was written`)
  return toStoredRule(row)
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
