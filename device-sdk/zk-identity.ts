/**
 * A device's anonymous ZK identity (docs/zklock.md §1): a secret in [1, p) and its
 * commitment Poseidon1(secret), the leaf the hub puts in its identity tree. The secret is
 * the identity: whoever holds it can claim as the device, and losing it loses the right to
 * claim. So the object never shows it (JSON, inspect, String) and only `exportZkIdentity`
 * writes it out, for a store.
 */
import { FIELD_P, identityLeaf, newIdentitySecret, nullifierHash } from '../circuits/claim-inputs.js'
import { ArgumentError, KeyError } from './errors.js'

// The secrets live here, not on the objects: nothing that walks an identity (JSON,
// inspect with showHidden, a debugger's property list, structuredClone) can reach them.
const secrets = new WeakMap<ZkIdentity, bigint>()
let makeIdentity: (secret: bigint) => ZkIdentity
const INSPECT = Symbol.for('nodejs.util.inspect.custom')

export class ZkIdentity {
  /** Poseidon1(secret): the leaf this identity has in the hub's tree. Public. */
  readonly commitment: bigint

  /** Use createZkIdentity(), importZkIdentity() or zkIdentityFromSecret(). */
  private constructor (secret: bigint) {
    secrets.set(this, secret)
    this.commitment = identityLeaf(secret)
    Object.freeze(this)
  }

  static {
    // The one way in for this module's functions, which check the secret first.
    makeIdentity = secret => new ZkIdentity(secret)
  }

  /** Poseidon2(secret, epoch): what the hub records for this identity's claim in `epoch`. */
  nullifier (epoch: number | bigint): bigint {
    return nullifierHash(zkIdentitySecret(this), BigInt(epoch))
  }

  toJSON (): { commitment: string } {
    return { commitment: this.commitment.toString() }
  }

  toString (): string {
    return `ZkIdentity(commitment ${this.commitment})`
  }

  [INSPECT] (): string {
    return this.toString()
  }
}

/** The secret, for the prover. Not exported from the SDK's entry: export the identity with exportZkIdentity. */
export function zkIdentitySecret (identity: ZkIdentity): bigint {
  const secret = secrets.get(identity)
  if (secret === undefined) throw new ArgumentError('expected a ZkIdentity made by createZkIdentity, importZkIdentity or zkIdentityFromSecret')
  return secret
}

/** A new identity: a secret of 31 random bytes (crypto.getRandomValues), never 0. */
export function createZkIdentity (): ZkIdentity {
  return makeIdentity(newIdentitySecret())
}

/** The identity of a known secret, a bigint in [1, p). */
export function zkIdentityFromSecret (secret: bigint): ZkIdentity {
  if (typeof secret !== 'bigint' || secret < 1n || secret >= FIELD_P) throw new KeyError('a ZK identity secret must be an integer in [1, p)')
  return makeIdentity(secret)
}

/** Poseidon1(secret): the commitment (leaf) of a secret. */
export function identityCommitment (secret: bigint): bigint {
  return zkIdentityFromSecret(secret).commitment
}

/**
 * The secret as text, for a store: `0x` and 64 lowercase hex digits. Treat it as a private
 * key: whoever reads it can claim as this device.
 */
export function exportZkIdentity (identity: ZkIdentity): string {
  return '0x' + zkIdentitySecret(identity).toString(16).padStart(64, '0')
}

/**
 * Reads a secret as exportZkIdentity writes it, or as decimal digits (the form of
 * docs/zklock.md's test vector). Hex needs its `0x`, so that "10" is never ambiguous.
 */
export function importZkIdentity (text: string): ZkIdentity {
  if (typeof text !== 'string') throw new KeyError('a ZK identity must be a string')
  const trimmed = text.trim()
  // Bounded lengths: a field element has at most 64 hex or 78 decimal digits.
  if (!/^0x[0-9a-fA-F]{1,64}$/.test(trimmed) && !/^[0-9]{1,78}$/.test(trimmed)) {
    throw new KeyError('a ZK identity must be 0x and up to 64 hex digits, or decimal digits')
  }
  return zkIdentityFromSecret(BigInt(trimmed))
}

/**
 * Where a device keeps its ZK secret between runs: the platform's secure storage on a
 * phone, a mode-0600 file on a gateway (FileZkIdentityStore in `device-sdk/node`).
 * `load` resolves undefined (or null) when nothing is stored yet.
 */
export interface ZkIdentityStore {
  load (): Promise<string | undefined | null>
  save (secret: string): Promise<void>
}

/** Keeps the secret in memory only: for tests, and apps that persist it themselves. */
export class MemoryZkIdentityStore implements ZkIdentityStore {
  #secret: string | undefined

  constructor (secret?: string) {
    this.#secret = secret
  }

  async load (): Promise<string | undefined> {
    return this.#secret
  }

  async save (secret: string): Promise<void> {
    this.#secret = secret
  }
}

/**
 * Loads the stored identity, or makes one and stores it on first run. A stored value that
 * does not parse is an error, never a reason to make a new identity: that would silently
 * drop the one the hub knows.
 */
export async function loadOrCreateZkIdentity (store: ZkIdentityStore): Promise<ZkIdentity> {
  const stored = await store.load()
  if (stored !== undefined && stored !== null) return importZkIdentity(stored)
  const identity = createZkIdentity()
  await store.save(exportZkIdentity(identity))
  return identity
}
