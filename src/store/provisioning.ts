/**
 * Provisioning tokens (fleet provisioning by claim): an admin makes a token for a role, a
 * number of uses and an expiry; devices enrol themselves with it, without the admin token.
 * Only the token's SHA-256 is stored, so a copy of the database gives no one a token.
 */
import { createHash, randomBytes, randomUUID } from 'node:crypto'
import type { Database, Statement } from 'better-sqlite3'
import { BadRequestError, ForbiddenError, NotFoundError, UnauthorizedError } from '../errors.js'
import { ROLES, type Principal, type PrincipalStore, type Role } from './principals.js'

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
/** Bytes of randomness in a token: 256 bits, base64url-encoded. */
const TOKEN_BYTES = 32

export class ProvisioningStore {
  readonly #db: Database
  readonly #principals: PrincipalStore
  readonly #insert: Statement<[string, Buffer, string, string | null, number, number, number]>
  readonly #get: Statement<[string], Row>
  readonly #byHash: Statement<[Buffer], Row>
  readonly #list: Statement<[], Row>
  readonly #use: Statement<[string]>
  readonly #revoke: Statement<[number, string]>

  constructor (db: Database, principals: PrincipalStore) {
    this.#db = db
    this.#principals = principals
    this.#insert = db.prepare('INSERT INTO provisioning_tokens (id, token_hash, role, name, uses_max, expires_ms, created_ms) VALUES (?, ?, ?, ?, ?, ?, ?)')
    this.#get = db.prepare(`SELECT ${COLUMNS} FROM provisioning_tokens WHERE id = ?`)
    this.#byHash = db.prepare(`SELECT ${COLUMNS} FROM provisioning_tokens WHERE token_hash = ?`)
    this.#list = db.prepare(`SELECT ${COLUMNS} FROM provisioning_tokens ORDER BY created_ms DESC LIMIT 1000`)
    this.#use = db.prepare('UPDATE provisioning_tokens SET uses = uses + 1 WHERE id = ? AND uses < uses_max')
    this.#revoke = db.prepare('UPDATE provisioning_tokens SET revoked_ms = ? WHERE id = ? AND revoked_ms IS NULL')
  }

  /** Makes a token; the secret is returned here once and never stored. */
  create (input: CreateTokenInput): { token: string, record: ProvisioningToken } {
    const nowMs = input.nowMs ?? Date.now()
    if (!ROLES.includes(input.role)) throw new BadRequestError(`role must be one of ${ROLES.join(', ')}`)
    if (!Number.isSafeInteger(input.usesMax) || input.usesMax < 1) throw new BadRequestError('usesMax must be a positive integer')
    if (!Number.isSafeInteger(input.expires) || input.expires <= nowMs) throw new BadRequestError('expires must be a time in the future (ms since the epoch)')
    const token = randomBytes(TOKEN_BYTES).toString('base64url')
    const id = randomUUID()
    this.#insert.run(id, hashToken(token), input.role, input.name ?? null, input.usesMax, input.expires, nowMs)
    return { token, record: this.get(id)! }
  }

  get (id: string): ProvisioningToken | undefined {
    const row = this.#get.get(id)
    return row && toToken(row)
  }

  list (): ProvisioningToken[] {
    return this.#list.all().map(toToken)
  }

  /** Revokes a token at once; NotFoundError when unknown; revoking twice is not an error. */
  revoke (id: string, nowMs = Date.now()): ProvisioningToken {
    this.#revoke.run(nowMs, id)
    const token = this.get(id)
    if (!token) throw new NotFoundError(`no provisioning token with id ${JSON.stringify(id)}`)
    return token
  }

  /**
   * Enrols a key with a token, in one transaction: the use is counted and the principal
   * created together, so a token of N uses enrols at most N principals however many
   * devices race for it. Unknown token → 401; revoked, expired or used up → 403.
   */
  redeem (token: string, enrolment: { publicKey: string, name?: string | null }, nowMs = Date.now()): { principal: Principal, token: ProvisioningToken } {
    return this.#db.transaction(() => {
      const row = this.#byHash.get(hashToken(token))
      if (!row) throw new UnauthorizedError('unknown provisioning token')
      if (row.revoked_ms !== null) throw new ForbiddenError('this provisioning token was revoked')
      if (row.expires_ms <= nowMs) throw new ForbiddenError('this provisioning token has expired')
      if (this.#use.run(row.id).changes === 0) throw new ForbiddenError('this provisioning token is used up')
      const principal = this.#principals.create({ publicKey: enrolment.publicKey, role: row.role, name: enrolment.name ?? row.name, nowMs })
      this.#principals.markProvisionedBy(principal.id, row.id)
      return { principal, token: this.get(row.id)! }
    }).immediate()
  }
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
