/**
 * The audit log: append-only, hash-chained rows in the `audit_log` table (migration 3).
 *
 * Each entry's hash is the SHA-256 of its canonical line, which holds every field and the
 * previous entry's hash, so changing or removing an entry breaks the chain from there on.
 * The canonical line of format `mn-audit-v1` is, with `|` between fields:
 *
 *   mn-audit-v1|seq|ts_ms|HEX(actor)|HEX(action)|HEX(target)|HEX(source)|HEX(detail)|prev_hash
 *
 * - seq and ts_ms in decimal;
 * - HEX(x) = the upper-case hex of x's UTF-8 bytes, exactly SQLite's `hex(x)` (and
 *   PostgreSQL's `upper(encode(convert_to(x, 'UTF8'), 'hex'))`); a NULL
 *   target or source is `-` (SQLite's hex(NULL) is '', which would be ambiguous with '');
 * - detail is the JSON text as stored; prev_hash is the previous entry's hash, or 64 zeros
 *   for seq 1;
 * - hash = lower-case hex of SHA-256 over the line's ASCII bytes, no trailing newline.
 *
 * Hex keeps the line free of separators and newlines whatever the fields hold, so an
 * auditor can rebuild it in SQL and hash it with sha256sum (docs/http-cage.md).
 *
 * When append resolves, the entry is committed, or part of the caller's open transaction
 * (SqlDatabase.transaction) and commits or rolls back with it. The log is the same on
 * SQLite and on PostgreSQL, so a fleet on one PostgreSQL database keeps one chain.
 */
import { createHash } from 'node:crypto'
import { setImmediate as yieldToEventLoop } from 'node:timers/promises'
import type { SqlDatabase, SqlValue } from '../store/sql.js'
import type { Identity } from './identity.js'

export const AUDIT_FORMAT = 'mn-audit-v1'
/** prev_hash of the first entry. */
export const GENESIS_HASH = '0'.repeat(64)
/** Largest detail, in bytes of its JSON. */
export const DETAIL_BYTES_MAX = 1024 * 1024
export const ACTOR_CHARS_MAX = 128
export const ACTION_CHARS_MAX = 64
export const TARGET_CHARS_MAX = 512
export const SOURCE_CHARS_MAX = 512
/** Largest page `list` returns (the HTTP route pages by at most 1,000). */
export const AUDIT_LIST_LIMIT_MAX = 10_000
/** Rows verify reads and checks between two yields to the event loop. */
export const VERIFY_BATCH_ROWS = 5_000

// Dotted lower-case words: `principal.enrol`, `request.blocked`.
const ACTION = /^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$/
const CONTROL = /[\u0000-\u001f\u007f]/
const HASH = /^[0-9a-f]{64}$/

export interface AuditInput {
  /** Who: `admin`, `principal:<id>`, `anonymous`, `hub`, … (see actorOf). */
  actor: string
  /** What, as dotted lower-case words: `policy.create`, `principal.revoke`. */
  action: string
  /** What it was done to: a principal id, a rule id, a path. */
  target?: string | null
  /** From where: the client's address for HTTP, or another channel's name. */
  source?: string | null
  /** Anything else worth keeping, as a JSON object. */
  detail?: Record<string, unknown>
  /** When, in ms since the epoch; now when absent. */
  nowMs?: number
}

export interface AuditEntry {
  seq: number
  /** ms since the epoch. */
  ts: number
  actor: string
  action: string
  target: string | null
  source: string | null
  detail: Record<string, unknown>
  prevHash: string
  hash: string
}

export interface AuditQuery {
  /** An exact action, or a prefix written `policy.*`. */
  action?: string
  actor?: string
  target?: string
  /** Entries at or after this time, ms. */
  since?: number
  /** Entries strictly before this time, ms. */
  until?: number
  /** Keyset cursor: entries with seq greater than this. */
  after?: number
  /** Keyset cursor: entries with seq less than this. */
  before?: number
  /** By seq; ascending unless 'desc'. */
  order?: 'asc' | 'desc'
  /** 1 to AUDIT_LIST_LIMIT_MAX. */
  limit: number
}

export interface AuditHead {
  seq: number
  hash: string
}

export type AuditVerifyResult =
  | { ok: true, entries: number, head: AuditHead | null }
  /** `entries`: how many entries before brokenAt verified. */
  | { ok: false, brokenAt: number, reason: string, entries: number }

export interface AuditVerifyOptions {
  /**
   * An entry known from elsewhere (a head recorded earlier): the chain must still hold it
   * with this hash. A chain cannot show by itself that its newest entries were cut off;
   * an anchor kept outside the database can.
   */
  anchor?: AuditHead
}

interface Row {
  seq: number
  ts_ms: number
  actor: string
  action: string
  target: string | null
  source: string | null
  detail: string
  prev_hash: string
  hash: string
}

const COLUMNS = 'seq, ts_ms, actor, action, target, source, detail, prev_hash, hash'

/** The actor string of an HTTP identity. */
export function actorOf (identity: Identity | null | undefined): string {
  if (identity == null) return 'anonymous'
  return identity.kind === 'principal' ? `principal:${identity.id}` : identity.kind
}

/** The canonical line of an entry (format mn-audit-v1, above). */
export function canonicalAuditLine (row: { seq: number, ts: number, actor: string, action: string, target: string | null, source: string | null, detail: string, prevHash: string }): string {
  return `${AUDIT_FORMAT}|${row.seq}|${row.ts}|${hex(row.actor)}|${hex(row.action)}|${nullableHex(row.target)}|${nullableHex(row.source)}|${hex(row.detail)}|${row.prevHash}`
}

export function auditHash (line: string): string {
  return createHash('sha256').update(line, 'utf8').digest('hex')
}

export class AuditLog {
  readonly #db: SqlDatabase

  constructor (db: SqlDatabase) {
    this.#db = db
  }

  /**
   * Appends an entry and returns it once committed. Throws a TypeError for malformed input
   * (a caller's bug) before touching the database. Inside the caller's transaction it
   * commits or rolls back with that transaction.
   */
  async append (input: AuditInput): Promise<AuditEntry> {
    const row = checkedRow(input)
    return this.#db.transaction(async () => {
      // Every process extends one chain: the lock keeps two from reading the same head
      // (PostgreSQL; SQLite's write transaction is already exclusive), and seq's primary
      // key with hash's UNIQUE would refuse a fork if one tried.
      await this.#db.lock('audit_log')
      const head = await this.head()
      const seq = head === null ? 1 : head.seq + 1
      const prevHash = head === null ? GENESIS_HASH : head.hash
      const entry = { seq, ts: row.ts_ms, actor: row.actor, action: row.action, target: row.target, source: row.source, detail: row.detail, prevHash }
      const hash = auditHash(canonicalAuditLine(entry))
      await this.#db.run(`INSERT INTO audit_log (${COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
        [seq, row.ts_ms, row.actor, row.action, row.target, row.source, row.detail, prevHash, hash])
      return { ...entry, detail: JSON.parse(row.detail) as Record<string, unknown>, hash }
    })
  }

  /**
   * Runs a change and records it in one transaction: the entry exists exactly when the
   * change was committed. `describe` turns the change's result into the entry. The change
   * must only wait for the database (see SqlDatabase.transaction).
   */
  recorded<T> (change: () => T | Promise<T>, describe: (result: T) => AuditInput): Promise<T> {
    return this.#db.transaction(async () => {
      const result = await change()
      await this.append(describe(result))
      return result
    })
  }

  /** The newest entry's seq and hash; null while the log is empty. */
  async head (): Promise<AuditHead | null> {
    return (await this.#db.get<AuditHead>('SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1')) ?? null
  }

  async get (seq: number): Promise<AuditEntry | undefined> {
    const row = await this.#db.get<Row>(`SELECT ${COLUMNS} FROM audit_log WHERE seq = ?`, [seq])
    return row === undefined ? undefined : toEntry(row)
  }

  /** One page of entries, by seq. Rejects with a TypeError for malformed queries. */
  async list (query: AuditQuery): Promise<AuditEntry[]> {
    const { action, actor, target, since, until, after, before, limit } = query
    const order = query.order ?? 'asc'
    if (!Number.isSafeInteger(limit) || limit < 1 || limit > AUDIT_LIST_LIMIT_MAX) {
      throw new TypeError(`limit must be an integer from 1 to ${AUDIT_LIST_LIMIT_MAX}, got ${String(limit)}`)
    }
    if (order !== 'asc' && order !== 'desc') throw new TypeError(`order must be asc or desc, got ${String(order)}`)
    for (const [name, value] of [['since', since], ['until', until], ['after', after], ['before', before]] as const) {
      if (value !== undefined && (!Number.isSafeInteger(value) || value < 0)) throw new TypeError(`${name} must be a non-negative integer, got ${String(value)}`)
    }
    // Built from fixed fragments only; every value is a bound parameter.
    const where: string[] = []
    const args: SqlValue[] = []
    if (action !== undefined) {
      if (action.endsWith('.*')) {
        // An exact prefix comparison: a range (`policy.` ≤ action < `policy/`) would depend on
        // the collation, which on a PostgreSQL database with a locale ignores punctuation.
        const stem = action.slice(0, -1)
        where.push('substr(action, 1, ?) = ?')
        args.push(stem.length, stem)
      } else {
        where.push('action = ?')
        args.push(action)
      }
    }
    const filters: Array<[string, SqlValue | undefined]> = [
      ['actor = ?', actor], ['target = ?', target], ['ts_ms >= ?', since], ['ts_ms < ?', until], ['seq > ?', after], ['seq < ?', before],
    ]
    for (const [clause, value] of filters) {
      if (value === undefined) continue
      where.push(clause)
      args.push(value)
    }
    args.push(limit)
    const sql = `SELECT ${COLUMNS} FROM audit_log ${where.length > 0 ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY seq ${order === 'desc' ? 'DESC' : 'ASC'} LIMIT ?`
    return (await this.#db.all<Row>(sql, args)).map(toEntry)
  }

  /**
   * Walks the whole chain in seq order and reports the first broken link: a gap in seq, a
   * prev_hash that is not the previous entry's hash, or a hash that does not match the
   * entry's fields. Reads in batches of `batchRows` (keyset paging keeps memory bounded and
   * lets other work run between batches); entries appended meanwhile are verified too.
   */
  async verify (options: AuditVerifyOptions & { batchRows?: number } = {}): Promise<AuditVerifyResult> {
    const batchRows = options.batchRows ?? VERIFY_BATCH_ROWS
    const walk = new ChainWalk()
    for (;;) {
      const rows = await this.#db.all<Row>(`SELECT ${COLUMNS} FROM audit_log WHERE seq > ? ORDER BY seq LIMIT ?`, [walk.lastSeq, batchRows])
      for (const row of rows) {
        const broken = walk.step(row)
        if (broken !== null) return broken
      }
      if (rows.length < batchRows) break
      await yieldToEventLoop()
    }
    return walk.finish(await this.#checkAnchor(options.anchor))
  }

  async #checkAnchor (anchor: AuditHead | undefined): Promise<{ brokenAt: number, reason: string } | null> {
    if (anchor === undefined) return null
    if (!Number.isSafeInteger(anchor.seq) || anchor.seq < 1 || !HASH.test(anchor.hash)) throw new TypeError('anchor must be { seq: positive integer, hash: 64 lower-case hex }')
    const row = await this.#db.get<{ hash: string }>('SELECT hash FROM audit_log WHERE seq = ?', [anchor.seq])
    if (row === undefined) return { brokenAt: anchor.seq, reason: `the anchored entry ${anchor.seq} is missing: the log was cut short` }
    if (row.hash !== anchor.hash) return { brokenAt: anchor.seq, reason: `entry ${anchor.seq} has hash ${row.hash}, not the anchored ${anchor.hash}: the chain was rewritten` }
    return null
  }
}

/** The row an input becomes; throws a TypeError naming what is malformed. */
function checkedRow (input: AuditInput): Omit<Row, 'seq' | 'prev_hash' | 'hash'> {
  const actor = requireText('actor', input.actor, ACTOR_CHARS_MAX)
  if (typeof input.action !== 'string' || input.action.length > ACTION_CHARS_MAX || !ACTION.test(input.action)) {
    throw new TypeError(`action must be dotted lower-case words of at most ${ACTION_CHARS_MAX} characters, got ${JSON.stringify(input.action)}`)
  }
  const target = input.target == null ? null : requireText('target', input.target, TARGET_CHARS_MAX)
  const source = input.source == null ? null : requireText('source', input.source, SOURCE_CHARS_MAX)
  const detail = input.detail ?? {}
  if (typeof detail !== 'object' || detail === null || Array.isArray(detail)) throw new TypeError('detail must be a plain object')
  const detailJson = JSON.stringify(detail)
  const detailBytes = Buffer.byteLength(detailJson)
  if (detailBytes > DETAIL_BYTES_MAX) throw new TypeError(`detail must be at most ${DETAIL_BYTES_MAX} bytes of JSON, got ${detailBytes}`)
  const nowMs = input.nowMs ?? Date.now()
  if (!Number.isSafeInteger(nowMs) || nowMs < 0) throw new TypeError(`nowMs must be a non-negative integer, got ${String(nowMs)}`)
  return { ts_ms: nowMs, actor, action: input.action, target, source, detail: detailJson }
}

/** The state of a walk along the chain: what the next entry must link to. */
class ChainWalk {
  lastSeq = 0
  #lastHash = GENESIS_HASH
  #entries = 0

  /** Checks one entry; a failure result when its link is broken, else null. */
  step (row: Row): AuditVerifyResult | null {
    const expectedSeq = this.lastSeq + 1
    if (row.seq !== expectedSeq) {
      return this.#broken(row.seq, this.lastSeq === 0
        ? `the log starts at seq ${row.seq}: entries 1 to ${row.seq - 1} are missing`
        : `seq ${row.seq} follows ${this.lastSeq}: entries ${expectedSeq} to ${row.seq - 1} are missing`)
    }
    if (row.prev_hash !== this.#lastHash) {
      return this.#broken(row.seq, this.lastSeq === 0
        ? 'prev_hash of the first entry is not 64 zeros'
        : `prev_hash is not the hash of entry ${this.lastSeq}: an entry before it was altered`)
    }
    const hash = auditHash(canonicalAuditLine({ seq: row.seq, ts: row.ts_ms, actor: row.actor, action: row.action, target: row.target, source: row.source, detail: row.detail, prevHash: row.prev_hash }))
    if (row.hash !== hash) return this.#broken(row.seq, 'hash does not match the entry\'s fields: the entry was altered after it was written')
    this.lastSeq = row.seq
    this.#lastHash = row.hash
    this.#entries++
    return null
  }

  finish (anchorProblem: { brokenAt: number, reason: string } | null): AuditVerifyResult {
    if (anchorProblem !== null) return { ok: false, ...anchorProblem, entries: this.#entries }
    return { ok: true, entries: this.#entries, head: this.lastSeq === 0 ? null : { seq: this.lastSeq, hash: this.#lastHash } }
  }

  #broken (seq: number, reason: string): AuditVerifyResult {
    return { ok: false, brokenAt: seq, reason, entries: this.#entries }
  }
}

function toEntry (row: Row): AuditEntry {
  let detail: Record<string, unknown>
  try {
    detail = JSON.parse(row.detail) as Record<string, unknown>
  } catch {
    // Only a row edited behind the hub's back can hold this; verify reports it.
    detail = { unparsed: row.detail }
  }
  return {
    seq: row.seq,
    ts: row.ts_ms,
    actor: row.actor,
    action: row.action,
    target: row.target,
    source: row.source,
    detail,
    prevHash: row.prev_hash,
    hash: row.hash,
  }
}

function hex (text: string): string {
  // Buffer writes a lone surrogate as U+FFFD, as SQLite stores it from better-sqlite3.
  return Buffer.from(text, 'utf8').toString('hex').toUpperCase()
}

function nullableHex (text: string | null): string {
  return text === null ? '-' : hex(text)
}

function requireText (name: string, value: unknown, charsMax: number): string {
  if (typeof value !== 'string' || value.length === 0 || value.length > charsMax || CONTROL.test(value)) {
    throw new TypeError(`${name} must be a string of 1 to ${charsMax} characters without control characters, got ${JSON.stringify(value)?.slice(0, 80)}`)
  }
  // What SQLite will hold: a lone surrogate becomes U+FFFD, so the returned entry and the
  // hash agree with the stored row.
  return Buffer.from(value, 'utf8').toString('utf8')
}
