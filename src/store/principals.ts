/**
 * The registry of principals (protocol-v1 §1, §8): enrolment, lookup, listing and
 * revocation, all through prepared statements.
 */
import type { Database, Statement } from 'better-sqlite3'
import { BadRequestError, ConflictError, NotFoundError } from '../errors.js'
import { parsePublicKey, principalIdFromPublicKey } from './public-key.js'

export const ROLES = Object.freeze(['device', 'service', 'node'] as const)
export type Role = typeof ROLES[number]

/** Longest principal name, in characters (Unicode code points). */
export const NAME_CHARS_MAX = 128
/** Largest page `list` returns. */
export const LIST_LIMIT_MAX = 10_000

/** A principal as the API shows it. */
export interface Principal {
  /** Lowercase hex, 32 characters. */
  id: string
  role: Role
  name: string | null
  /** Lowercase hex, 64 characters. */
  publicKey: string
  /** Enrolment time, ms since the Unix epoch. */
  created: number
  /** Revocation time, ms since the Unix epoch, or null while the principal is active. */
  revoked: number | null
}

export interface CreatePrincipalInput {
  /** Raw 32 bytes, or 64 hex characters in either case. */
  publicKey: Uint8Array | string
  role: Role
  name?: string | null
  /** Enrolment time; now when absent. */
  nowMs?: number
}

export interface ListPrincipalsQuery {
  role?: Role
  /** true: only revoked principals; false: only active ones; absent: both. */
  revoked?: boolean
  /** 1 to LIST_LIMIT_MAX. */
  limit: number
  /** Keyset cursor: only ids greater than this one. */
  after?: string
}

export interface RevokeResult {
  principal: Principal
  /** False when the principal was already revoked (its revocation time is kept). */
  changed: boolean
}

interface Row {
  id: string
  public_key: Buffer
  role: Role
  name: string | null
  created_ms: number
  revoked_ms: number | null
}

const COLUMNS = 'id, public_key, role, name, created_ms, revoked_ms'

export class PrincipalStore {
  readonly #db: Database
  readonly #insert: Statement<[string, Buffer, string, string | null, number]>
  readonly #get: Statement<[string], Row>
  readonly #getPublicKey: Statement<[string], { public_key: Buffer }>
  readonly #revoke: Statement<[number, string]>
  readonly #rename: Statement<[string | null, string]>
  readonly #setProvisionedBy: Statement<[string, string]>
  readonly #count: Statement<[], { n: number }>
  /** One statement per combination of list filters: at most 2 × 3 × 2 = 12. */
  readonly #listStatements = new Map<string, Statement<unknown[], Row>>()

  constructor (db: Database) {
    this.#db = db
    this.#insert = db.prepare(`INSERT INTO principals (${COLUMNS}) VALUES (?, ?, ?, ?, ?, NULL)`)
    this.#get = db.prepare(`SELECT ${COLUMNS} FROM principals WHERE id = ?`)
    this.#getPublicKey = db.prepare('SELECT public_key FROM principals WHERE id = ?')
    this.#revoke = db.prepare('UPDATE principals SET revoked_ms = ? WHERE id = ? AND revoked_ms IS NULL')
    this.#rename = db.prepare('UPDATE principals SET name = ? WHERE id = ?')
    this.#setProvisionedBy = db.prepare('UPDATE principals SET provisioned_by = ? WHERE id = ?')
    this.#count = db.prepare('SELECT count(*) AS n FROM principals')
  }

  /** Enrols a key. ConflictError when the key was enrolled before, revoked or not. */
  create (input: CreatePrincipalInput): Principal {
    const publicKey = parsePublicKey(input.publicKey)
    if (!ROLES.includes(input.role)) {
      throw new BadRequestError(`role must be one of ${ROLES.join(', ')}, got ${JSON.stringify(input.role)}`)
    }
    const name = checkName(input.name ?? null)
    const nowMs = input.nowMs ?? Date.now()
    requireTimeMs('nowMs', nowMs)
    const id = principalIdFromPublicKey(publicKey)
    try {
      this.#insert.run(id, Buffer.from(publicKey), input.role, name, nowMs)
    } catch (err) {
      const code = (err as { code?: unknown }).code
      // The constraint, not a prior SELECT, decides: another process may share the file.
      if (code === 'SQLITE_CONSTRAINT_PRIMARYKEY' || code === 'SQLITE_CONSTRAINT_UNIQUE') {
        throw new ConflictError(`public key already enrolled as ${id}`)
      }
      throw err
    }
    return { id, role: input.role, name, publicKey: Buffer.from(publicKey).toString('hex'), created: nowMs, revoked: null }
  }

  get (id: string): Principal | undefined {
    const row = this.#get.get(id)
    return row === undefined ? undefined : toPrincipal(row)
  }

  /** The raw 32-byte key, for verifying signatures; undefined when the id is unknown. */
  getPublicKey (id: string): Uint8Array | undefined {
    const row = this.#getPublicKey.get(id)
    return row === undefined ? undefined : new Uint8Array(row.public_key)
  }

  /** One page, ordered by id. The next page starts `after` the last id of this one. */
  list (query: ListPrincipalsQuery): Principal[] {
    const { role, revoked, limit, after } = query
    if (!Number.isSafeInteger(limit) || limit < 1 || limit > LIST_LIMIT_MAX) {
      throw new BadRequestError(`limit must be an integer from 1 to ${LIST_LIMIT_MAX}, got ${String(limit)}`)
    }
    if (role !== undefined && !ROLES.includes(role)) {
      throw new BadRequestError(`role must be one of ${ROLES.join(', ')}, got ${JSON.stringify(role)}`)
    }
    const args: unknown[] = []
    if (role !== undefined) args.push(role)
    if (after !== undefined) args.push(after)
    args.push(limit)
    return this.#listStatement(role !== undefined, revoked, after !== undefined).all(...args).map(toPrincipal)
  }

  /**
   * Revokes at once; NotFoundError when the id is unknown. Revoking a revoked principal is
   * not an error: it returns `changed: false` and keeps the first revocation time.
   */
  revoke (id: string, nowMs: number): RevokeResult {
    requireTimeMs('nowMs', nowMs)
    return this.#db.transaction(() => {
      const changed = this.#revoke.run(nowMs, id).changes === 1
      const row = this.#get.get(id)
      if (row === undefined) throw new NotFoundError(`no principal with id ${JSON.stringify(id)}`)
      return { principal: toPrincipal(row), changed }
    })()
  }

  /** Sets or clears (null) a principal's name; NotFoundError when the id is unknown. */
  rename (id: string, name: string | null): Principal {
    if (this.#rename.run(checkName(name), id).changes === 0) throw new NotFoundError(`no principal with id ${JSON.stringify(id)}`)
    return this.get(id)!
  }

  /** Records which provisioning token enrolled a principal (inside the enrolment's transaction). */
  markProvisionedBy (id: string, tokenId: string): void {
    this.#setProvisionedBy.run(tokenId, id)
  }

  count (): number {
    return this.#count.get()!.n
  }

  #listStatement (byRole: boolean, revoked: boolean | undefined, paged: boolean): Statement<unknown[], Row> {
    const key = `${byRole}/${String(revoked)}/${paged}`
    let statement = this.#listStatements.get(key)
    if (statement === undefined) {
      // Built from fixed fragments only; every value is a bound parameter.
      const where: string[] = []
      if (byRole) where.push('role = ?')
      if (revoked === true) where.push('revoked_ms IS NOT NULL')
      if (revoked === false) where.push('revoked_ms IS NULL')
      if (paged) where.push('id > ?')
      const sql = `SELECT ${COLUMNS} FROM principals ${where.length > 0 ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY id LIMIT ?`
      statement = this.#db.prepare<unknown[], Row>(sql)
      this.#listStatements.set(key, statement)
    }
    return statement
  }
}

function toPrincipal (row: Row): Principal {
  return {
    id: row.id,
    role: row.role,
    name: row.name,
    publicKey: row.public_key.toString('hex'),
    created: row.created_ms,
    revoked: row.revoked_ms,
  }
}

function checkName (name: string | null): string | null {
  if (name === null) return null
  const chars = typeof name === 'string' ? [...name].length : -1
  if (chars < 1 || chars > NAME_CHARS_MAX) {
    throw new BadRequestError(`name must be a string of 1 to ${NAME_CHARS_MAX} characters`)
  }
  return name
}

function requireTimeMs (name: string, value: number): void {
  if (!Number.isSafeInteger(value) || value < 0) {
    throw new BadRequestError(`${name} must be a non-negative integer of milliseconds, got ${String(value)}`)
  }
}
