/**
 * Principals as the broker sees them: role, revocation and a cached node:crypto KeyObject.
 * The hub verifies with node:crypto (about 15× noble's rate here) and keeps one KeyObject
 * per principal: building it per call halves the verify rate (shared/baselines.md).
 */
import { createPublicKey, verify, type KeyObject } from 'node:crypto'

export type Role = 'device' | 'service' | 'node'

/** What the broker needs of a principal record (the store's record satisfies it). */
export interface PrincipalRecord {
  id: string
  role: Role
  publicKey: string
  revoked: number | null
}

export interface KnownPrincipal {
  id: string
  role: Role
  revoked: boolean
  key: KeyObject
}

// DER prefix of an ed25519 SubjectPublicKeyInfo (RFC 8410): the raw 32-byte key follows.
const ED25519_SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex')

export function ed25519PublicKeyObject (raw: Uint8Array): KeyObject {
  if (raw.length !== 32) throw new TypeError(`ed25519 public key expected 32 bytes, got length=${raw.length}`)
  return createPublicKey({ key: Buffer.concat([ED25519_SPKI_PREFIX, raw]), format: 'der', type: 'spki' })
}

/**
 * Verifies on libuv's thread pool (the callback form of crypto.verify), so signature
 * checks spread over the cores and never hold the event loop. Never throws: bad input is
 * simply not a valid signature.
 */
export function verifyEd25519 (key: KeyObject, message: Uint8Array, signature: Uint8Array): Promise<boolean> {
  return new Promise(resolve => {
    if (signature.length !== 64) return resolve(false)
    try {
      verify(null, message, key, signature, (err, ok) => resolve(!err && ok))
    } catch {
      resolve(false)
    }
  })
}

/**
 * A bounded cache in front of the principal store. Entries go when a principal is
 * revoked (forget) and, past `maxEntries`, in insertion order. With `revalidateMs` (cluster
 * mode, where another process may revoke without this one hearing of it) an entry older
 * than that is read again before use.
 */
export class PrincipalDirectory {
  readonly #lookup: (id: string) => PrincipalRecord | undefined
  readonly #cache = new Map<string, KnownPrincipal & { cachedMs: number }>()
  readonly #maxEntries: number
  readonly #revalidateMs: number

  constructor (lookup: (id: string) => PrincipalRecord | undefined, maxEntries = 100_000, revalidateMs = Infinity) {
    this.#lookup = lookup
    this.#maxEntries = maxEntries
    this.#revalidateMs = revalidateMs
  }

  get (id: string): KnownPrincipal | undefined {
    const cached = this.#cache.get(id)
    if (cached && (this.#revalidateMs === Infinity || Date.now() - cached.cachedMs < this.#revalidateMs)) return cached
    const record = this.#lookup(id)
    if (!record) return undefined
    if (cached && cached.revoked === (record.revoked !== null)) {
      cached.cachedMs = Date.now()
      return cached
    }
    const known: KnownPrincipal & { cachedMs: number } = {
      id: record.id,
      role: record.role,
      revoked: record.revoked !== null,
      key: ed25519PublicKeyObject(Buffer.from(record.publicKey, 'hex')),
      cachedMs: Date.now(),
    }
    if (this.#cache.size >= this.#maxEntries) {
      this.#cache.delete(this.#cache.keys().next().value as string)
    }
    this.#cache.set(id, known)
    return known
  }

  /** Drops the cached entry so the next lookup reads the store (after a revocation). */
  forget (id: string): void {
    this.#cache.delete(id)
  }
}
