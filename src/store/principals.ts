/**
 * The registry of principals (protocol-v1 §1, §8): enrolment, lookup, listing and
 * revocation, on either engine (SqlDatabase).
 */
import { BadRequestError, ConflictError, NotFoundError } from '../errors.js'
import { constraintViolated, type SqlDatabase, type SqlValue } from './sql.js'
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
const SELECT_BY_ID = `SELECT ${COLUMNS} FROM principals WHERE id = ?`

export class PrincipalStore {
  readonly #db: SqlDatabase

  constructor (db: SqlDatabase) {
    this.#db = db
  }

  /** Enrols a key. ConflictError when the key was enrolled before, revoked or not. */
  async create (input: CreatePrincipalInput): Promise<Principal> {
    const publicKey = parsePublicKey(input.publicKey)
    if (!ROLES.includes(input.role)) {
      throw new BadRequestError(`role must be one of ${ROLES.join(', ')}, got ${JSON.stringify(input.role)}`)
    }
    const name = checkName(input.name ?? null)
    const nowMs = input.nowMs ?? Date.now()
    requireTimeMs('nowMs', nowMs)
    const id = principalIdFromPublicKey(publicKey)
    try {
      await this.#db.run(`INSERT INTO principals (${COLUMNS}) VALUES (?, ?, ?, ?, ?, NULL)`, [id, Buffer.from(publicKey), input.role, name, nowMs])
    } catch (err) {
      // The constraint, not a prior SELECT, decides: other processes share the database.
      if (constraintViolated(err) === 'unique') throw new ConflictError(`public key already enrolled as ${id}`)
      throw err
    }
    return { id, role: input.role, name, publicKey: Buffer.from(publicKey).toString('hex'), created: nowMs, revoked: null }
  }

  async get (id: string): Promise<Principal | undefined> {
    if (!storable(id)) return undefined
    const row = await this.#db.get<Row>(SELECT_BY_ID, [id])
    return row === undefined ? undefined : toPrincipal(row)
  }

  /** The raw 32-byte key, for verifying signatures; undefined when the id is unknown. */
  async getPublicKey (id: string): Promise<Uint8Array | undefined> {
    if (!storable(id)) return undefined
    const row = await this.#db.get<{ public_key: Buffer }>('SELECT public_key FROM principals WHERE id = ?', [id])
    return row === undefined ? undefined : new Uint8Array(row.public_key)
  }

  /** One page, ordered by id. The next page starts `after` the last id of this one. */
  async list (query: ListPrincipalsQuery): Promise<Principal[]> {
    const { role, revoked, limit } = query
    if (!Number.isSafeInteger(limit) || limit < 1 || limit > LIST_LIMIT_MAX) {
      throw new BadRequestError(`limit must be an integer from 1 to ${LIST_LIMIT_MAX}, got ${String(limit)}`)
    }
    if (role !== undefined && !ROLES.includes(role)) {
      throw new BadRequestError(`role must be one of ${ROLES.join(', ')}, got ${JSON.stringify(role)}`)
    }
    // PostgreSQL's text cannot hold NUL. Ids never contain one, so in byte order an id is
    // greater than "ab\0…" exactly when it is greater than "ab": the cursor is cut there.
    const after = query.after === undefined ? undefined : query.after.split('\0', 1)[0]
    // Built from fixed fragments only; every value is a bound parameter.
    const where: string[] = []
    const params: SqlValue[] = []
    if (role !== undefined) {
      where.push('role = ?')
      params.push(role)
    }
    if (revoked === true) where.push('revoked_ms IS NOT NULL')
    if (revoked === false) where.push('revoked_ms IS NULL')
    if (after !== undefined) {
      where.push('id > ?')
      params.push(after)
    }
    params.push(limit)
    const sql = `SELECT ${COLUMNS} FROM principals ${where.length > 0 ? `WHERE ${where.join(' AND ')} ` : ''}ORDER BY id LIMIT ?`
    return (await this.#db.all<Row>(sql, params)).map(toPrincipal)
  }

  /**
   * Revokes at once; NotFoundError when the id is unknown. Revoking a revoked principal is
   * not an error: it returns `changed: false` and keeps the first revocation time.
   */
  async revoke (id: string, nowMs: number): Promise<RevokeResult> {
    requireTimeMs('nowMs', nowMs)
    if (!storable(id)) throw notFound(id)
    return this.#db.transaction(async () => {
      const changed = (await this.#db.run('UPDATE principals SET revoked_ms = ? WHERE id = ? AND revoked_ms IS NULL', [nowMs, id])).changes === 1
      const row = await this.#db.get<Row>(SELECT_BY_ID, [id])
      if (row === undefined) throw notFound(id)
      return { principal: toPrincipal(row), changed }
    })
  }

  /** Sets or clears (null) a principal's name; NotFoundError when the id is unknown. */
  async rename (id: string, name: string | null): Promise<Principal> {
    const checked = checkName(name)
    if (!storable(id)) throw notFound(id)
    // RETURNING reads the row as this statement left it, with no second query to race.
    const row = await this.#db.get<Row>(`UPDATE principals SET name = ? WHERE id = ? RETURNING ${COLUMNS}`, [checked, id])
    if (row === undefined) throw notFound(id)
    return toPrincipal(row)
  }

  /** Records which provisioning token enrolled a principal (inside the enrolment's transaction). */
  async markProvisionedBy (id: string, tokenId: string): Promise<void> {
    await this.#db.run('UPDATE principals SET provisioned_by = ? WHERE id = ?', [tokenId, id])
  }

  async count (): Promise<number> {
    return (await this.#db.get<{ n: number }>('SELECT count(*) AS n FROM principals'))!.n
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

function notFound (id: string): NotFoundError {
  return new NotFoundError(`no principal with id ${JSON.stringify(id)}`)
}

/**
 * Whether a looked-up id or cursor can be sent to the database at all: PostgreSQL refuses
 * text with NUL in it (an error, where SQLite would simply find nothing). No stored id has
 * one, so such an id is unknown on either engine.
 */
export function storable (text: string): boolean {
  return !text.includes('\0')
}

/** A name as stored: null, or 1 to NAME_CHARS_MAX code points without NUL. */
export function checkName (name: string | null): string | null {
  if (name === null) return null
  const chars = typeof name === 'string' ? [...name].length : -1
  if (chars < 1 || chars > NAME_CHARS_MAX) {
    throw new BadRequestError(`name must be a string of 1 to ${NAME_CHARS_MAX} characters`)
  }
  // PostgreSQL's text cannot hold NUL: refused on both engines, so they keep the same names.
  if (name.includes('\0')) throw new BadRequestError('name must not contain NUL characters')
  return name
}

function requireTimeMs (name: string, value: number): void {
  if (!Number.isSafeInteger(value) || value < 0) {
    throw new BadRequestError(`${name} must be a non-negative integer of milliseconds, got ${String(value)}`)
  }
}
