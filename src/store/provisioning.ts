/**
 * Provisioning tokens (fleet provisioning by claim): an admin makes a token for a role, a
 * number of uses and an expiry; devices enrol themselves with it, without the admin token.
 * Only the token's SHA-256 is stored, so a copy of the database gives no one a token.
 */
import { createHash, randomBytes, randomUUID } from 'node:crypto'
import { BadRequestError, ForbiddenError, NotFoundError, UnauthorizedError } from '../errors.js'
import type { SqlDatabase } from './sql.js'
import { ROLES, checkName, storable, type Principal, type PrincipalStore, type Role } from './principals.js'

export interface ProvisioningToken {
  id: string
  role: Role
  /** Given to each principal it enrols, unless the device names itself. */
  name: string | null
  usesMax: number
  uses: number
  /** ms since the epoch. */
  expires: number
  created: number
  revoked: number | null
}

export interface CreateTokenInput {
  role: Role
  name?: string | null
  usesMax: number
  expires: number
  nowMs?: number
}

interface Row {
  id: string
  role: Role
  name: string | null
  uses_max: number
  uses: number
  expires_ms: number
  created_ms: number
  revoked_ms: number | null
}

const COLUMNS = 'id, role, name, uses_max, uses, expires_ms, created_ms, revoked_ms'
const SELECT_BY_ID = `SELECT ${COLUMNS} FROM provisioning_tokens WHERE id = ?`
/** Bytes of randomness in a token: 256 bits, base64url-encoded. */
const TOKEN_BYTES = 32

export class ProvisioningStore {
  readonly #db: SqlDatabase
  readonly #principals: PrincipalStore

  constructor (db: SqlDatabase, principals: PrincipalStore) {
    this.#db = db
    this.#principals = principals
  }

  /** Makes a token; the secret is returned here once and never stored. */
  async create (input: CreateTokenInput): Promise<{ token: string, record: ProvisioningToken }> {
    const nowMs = input.nowMs ?? Date.now()
    if (!ROLES.includes(input.role)) throw new BadRequestError(`role must be one of ${ROLES.join(', ')}`)
    if (!Number.isSafeInteger(input.usesMax) || input.usesMax < 1) throw new BadRequestError('usesMax must be a positive integer')
    if (!Number.isSafeInteger(input.expires) || input.expires <= nowMs) throw new BadRequestError('expires must be a time in the future (ms since the epoch)')
    // The name becomes each enrolled principal's: checked as theirs is, now rather than at redemption.
    const name = checkName(input.name ?? null)
    const token = randomBytes(TOKEN_BYTES).toString('base64url')
    const row = await this.#db.get<Row>(
      `INSERT INTO provisioning_tokens (id, token_hash, role, name, uses_max, expires_ms, created_ms) VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING ${COLUMNS}`,
      [randomUUID(), hashToken(token), input.role, name, input.usesMax, input.expires, nowMs],
    )
    return { token, record: toToken(row!) }
  }

  async get (id: string): Promise<ProvisioningToken | undefined> {
    if (!storable(id)) return undefined
    const row = await this.#db.get<Row>(SELECT_BY_ID, [id])
    return row && toToken(row)
  }

  /** The newest 1000 tokens, newest first. */
  async list (): Promise<ProvisioningToken[]> {
    return (await this.#db.all<Row>(`SELECT ${COLUMNS} FROM provisioning_tokens ORDER BY created_ms DESC, id LIMIT 1000`)).map(toToken)
  }

  /** Revokes a token at once; NotFoundError when unknown; revoking twice is not an error. */
  async revoke (id: string, nowMs = Date.now()): Promise<ProvisioningToken> {
    if (storable(id)) await this.#db.run('UPDATE provisioning_tokens SET revoked_ms = ? WHERE id = ? AND revoked_ms IS NULL', [nowMs, id])
    const token = await this.get(id)
    if (!token) throw new NotFoundError(`no provisioning token with id ${JSON.stringify(id)}`)
    return token
  }

  /**
   * Enrols a key with a token, in one transaction: the use is counted and the principal
   * created together, so a token of N uses enrols at most N principals however many
   * devices race for it, on however many hub processes. Unknown token → 401; revoked,
   * expired or used up → 403.
   */
  async redeem (token: string, enrolment: { publicKey: string, name?: string | null }, nowMs = Date.now()): Promise<{ principal: Principal, token: ProvisioningToken }> {
    const hash = hashToken(token)
    return this.#db.transaction(async () => {
      const row = await this.#db.get<Row>(`SELECT ${COLUMNS} FROM provisioning_tokens WHERE token_hash = ?`, [hash])
      if (!row) throw new UnauthorizedError('unknown provisioning token')
      refuseUnusable(row, nowMs)
      // The conditional update, not the read above, decides: it counts the use only while the
      // token is still usable. On PostgreSQL a concurrent redemption's update waits for this
      // transaction's row lock and then re-checks the condition on the committed row, so two
      // processes cannot both take the last use.
      const used = await this.#db.run(
        'UPDATE provisioning_tokens SET uses = uses + 1 WHERE id = ? AND uses < uses_max AND revoked_ms IS NULL AND expires_ms > ?',
        [row.id, nowMs],
      )
      if (used.changes === 0) {
        // Another redemption or a revocation got there first: say which, from the row as it is now.
        const now = await this.#db.get<Row>(SELECT_BY_ID, [row.id])
        if (now) refuseUnusable(now, nowMs)
        throw new ForbiddenError('this provisioning token is used up')
      }
      const principal = await this.#principals.create({ publicKey: enrolment.publicKey, role: row.role, name: enrolment.name ?? row.name, nowMs })
      await this.#principals.markProvisionedBy(principal.id, row.id)
      const after = await this.#db.get<Row>(SELECT_BY_ID, [row.id])
      return { principal, token: toToken(after!) }
    })
  }
}

/** Throws the 403 a revoked or expired token gets. */
function refuseUnusable (row: Row, nowMs: number): void {
  if (row.revoked_ms !== null) throw new ForbiddenError('this provisioning token was revoked')
  if (row.expires_ms <= nowMs) throw new ForbiddenError('this provisioning token has expired')
}

function hashToken (token: string): Buffer {
  return createHash('sha256').update(token, 'utf8').digest()
}

function toToken (row: Row): ProvisioningToken {
  return {
    id: row.id,
    role: row.role,
    name: row.name,
    usesMax: row.uses_max,
    uses: row.uses,
    expires: row.expires_ms,
    created: row.created_ms,
    revoked: row.revoked_ms,
  }
}
