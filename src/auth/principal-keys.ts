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

/** Reads one principal from the store: undefined when the id is unknown. */
export type PrincipalLookup = (id: string) => Promise<PrincipalRecord | undefined> | PrincipalRecord | undefined

type CachedPrincipal = KnownPrincipal & { cachedMs: number }

interface PendingLookup {
  promise: Promise<KnownPrincipal | undefined>
  /** Set by forget(): the store may have changed since this lookup read it, so it must not be cached. */
  forgotten: boolean
}

/**
 * A bounded cache in front of the principal store. Entries go when a principal is
 * revoked (forget) and, past `maxEntries`, in insertion order. With `revalidateMs` (cluster
 * mode, where another process may revoke without this one hearing of it) an entry older
 * than that is read again before use.
 *
 * A cached entry is answered without touching the store; lookups of one id that miss at the
 * same time share one read of the store.
 */
export class PrincipalDirectory {
  readonly #lookup: PrincipalLookup
  readonly #cache = new Map<string, CachedPrincipal>()
  readonly #pending = new Map<string, PendingLookup>()
  readonly #maxEntries: number
  readonly #revalidateMs: number

  constructor (lookup: PrincipalLookup, maxEntries = 100_000, revalidateMs = Infinity) {
    this.#lookup = lookup
    this.#maxEntries = maxEntries
    this.#revalidateMs = revalidateMs
  }

  /** The principal, or undefined when the id is unknown; rejects when the store cannot be read. */
  get (id: string): Promise<KnownPrincipal | undefined> {
    const cached = this.#cache.get(id)
    if (cached && (this.#revalidateMs === Infinity || Date.now() - cached.cachedMs < this.#revalidateMs)) return Promise.resolve(cached)
    const pending = this.#pending.get(id)
    if (pending) return pending.promise
    const lookup: PendingLookup = { promise: Promise.resolve(undefined), forgotten: false }
    lookup.promise = this.#read(id, lookup).finally(() => {
      if (this.#pending.get(id) === lookup) this.#pending.delete(id)
    })
    this.#pending.set(id, lookup)
    return lookup.promise
  }

  /** Drops the cached entry so the next lookup reads the store (after a revocation). */
  forget (id: string): void {
    this.#cache.delete(id)
    const pending = this.#pending.get(id)
    if (pending) {
      // A read already under way may predate the revocation: its answer goes to those who
      // asked, but neither into the cache nor to those who ask from now on.
      pending.forgotten = true
      this.#pending.delete(id)
    }
  }

  async #read (id: string, lookup: PendingLookup): Promise<KnownPrincipal | undefined> {
    const record = await this.#lookup(id)
    if (!record) return undefined
    const cached = lookup.forgotten ? undefined : this.#cache.get(id)
    if (cached && cached.revoked === (record.revoked !== null)) {
      cached.cachedMs = Date.now()
      return cached
    }
    const known: CachedPrincipal = {
      id: record.id,
      role: record.role,
      revoked: record.revoked !== null,
      key: ed25519PublicKeyObject(Buffer.from(record.publicKey, 'hex')),
      cachedMs: Date.now(),
    }
    if (lookup.forgotten) return known
    if (this.#cache.size >= this.#maxEntries && !this.#cache.has(id)) {
      this.#cache.delete(this.#cache.keys().next().value as string)
    }
    this.#cache.set(id, known)
    return known
  }
}
