/**
 * Ed25519 key pairs of principals (protocol-v1 §1), signing and verifying. Pure
 * @noble/ed25519 so that the same code runs in Node, browsers and React Native; its
 * signatures are byte-identical to node:crypto's (baselines.md).
 */
import * as ed from '@noble/ed25519'
import { sha512 } from '@noble/hashes/sha2.js'
import { fromHex, principalIdFromPublicKey, toHex, type Signer } from '../src/protocol/index.js'
import { KeyError } from './errors.js'

// noble's synchronous methods need a SHA-512 implementation; the async ones would use
// WebCrypto, but signing sits on the publish path where sync keeps batching simple.
ed.hashes.sha512 = sha512

export interface KeyPair {
  /** 32-byte ed25519 secret (seed), RFC 8032. Keep it private. */
  readonly secretKey: Uint8Array
  /** 32-byte raw ed25519 public key: what the hub enrols. */
  readonly publicKey: Uint8Array
  /** Principal id: hex of the first 16 bytes of SHA-256(publicKey), 32 characters. */
  readonly id: string
}

/** The JSON form, as `metanode keygen` writes it: lowercase hex. */
export interface ExportedKeyPair {
  secretKey: string
  publicKey: string
  id: string
}

/** Where a device keeps its key pair between runs. `load` resolves null when none is stored yet. */
export interface KeyStore {
  load (): Promise<KeyPair | null>
  save (keyPair: KeyPair): Promise<void>
}

const KEY_BYTES = 32
const SIGNATURE_BYTES = 64

export function generateKeyPair (): KeyPair {
  return keyPairFromSecretKey(ed.utils.randomSecretKey())
}

/** Derives the public key and id from a 32-byte secret, given as bytes or hex. */
export function keyPairFromSecretKey (secret: Uint8Array | string): KeyPair {
  const secretKey = typeof secret === 'string' ? hexKey('secretKey', secret) : secret
  if (!(secretKey instanceof Uint8Array) || secretKey.length !== KEY_BYTES) {
    throw new KeyError(`secretKey expected Uint8Array of length ${KEY_BYTES}, got ${describe(secretKey)}`)
  }
  // A copy, so that the caller zeroing or reusing their buffer cannot change our key.
  const copy = Uint8Array.from(secretKey)
  const publicKey = ed.getPublicKey(copy)
  return Object.freeze({ secretKey: copy, publicKey, id: principalIdFromPublicKey(publicKey) })
}

export function exportKeyPair (keyPair: KeyPair): ExportedKeyPair {
  return { secretKey: toHex(keyPair.secretKey), publicKey: toHex(keyPair.publicKey), id: keyPair.id }
}

/**
 * Reads the JSON form (a string or the parsed object). The secret key is the truth: the
 * public key and id, when present, must match what it derives, so that a hand-edited or
 * mixed-up file fails here rather than as a refused CONNECT later.
 */
export function importKeyPair (input: string | Partial<ExportedKeyPair>): KeyPair {
  let value: unknown = input
  if (typeof input === 'string') {
    try {
      value = JSON.parse(input)
    } catch (err) {
      throw new KeyError(`key pair is not valid JSON: ${(err as Error).message}`)
    }
  }
  if (value === null || typeof value !== 'object') throw new KeyError('key pair must be a JSON object')
  const { secretKey, publicKey, id } = value as Record<string, unknown>
  if (typeof secretKey !== 'string') throw new KeyError('key pair needs "secretKey" as 64 hex characters')
  const keyPair = keyPairFromSecretKey(secretKey)
  if (publicKey !== undefined && (typeof publicKey !== 'string' || publicKey.toLowerCase() !== toHex(keyPair.publicKey))) {
    throw new KeyError('"publicKey" does not belong to "secretKey"')
  }
  if (id !== undefined && id !== keyPair.id) {
    throw new KeyError(`"id" ${String(id)} does not match the key's principal id ${keyPair.id}`)
  }
  return keyPair
}

/** Loads the stored key pair, or generates one and stores it on first run. */
export async function loadOrCreateKeyPair (store: KeyStore): Promise<KeyPair> {
  const existing = await store.load()
  if (existing) return existing
  const keyPair = generateKeyPair()
  await store.save(keyPair)
  return keyPair
}

/** Keeps the key pair in memory only: for tests, and for apps that persist it themselves. */
export class MemoryKeyStore implements KeyStore {
  #keyPair: KeyPair | null

  constructor (keyPair: KeyPair | null = null) {
    this.#keyPair = keyPair
  }

  async load (): Promise<KeyPair | null> {
    return this.#keyPair
  }

  async save (keyPair: KeyPair): Promise<void> {
    this.#keyPair = keyPair
  }
}

/** A Signer (src/protocol) over this key pair's secret. */
export function signerFor (keyPair: KeyPair): Signer {
  return message => ed.sign(message, keyPair.secretKey)
}

export function sign (keyPair: KeyPair, message: Uint8Array): Uint8Array {
  return ed.sign(message, keyPair.secretKey)
}

/**
 * True when `signature` is a valid ed25519 signature of `message` by `publicKey`. Untrusted
 * input never throws: a malformed signature or key is simply false. (noble verifies by
 * ZIP-215 rules; the hub's node:crypto does not, which only matters for crafted keys.)
 */
export function verify (signature: Uint8Array, message: Uint8Array, publicKey: Uint8Array): boolean {
  if (signature.length !== SIGNATURE_BYTES || publicKey.length !== KEY_BYTES) return false
  try {
    return ed.verify(signature, message, publicKey)
  } catch {
    return false
  }
}

/** Accepts a public key as 32 bytes or 64 hex characters (either case). */
export function publicKeyBytes (publicKey: Uint8Array | string): Uint8Array {
  const bytes = typeof publicKey === 'string' ? hexKey('publicKey', publicKey) : publicKey
  if (!(bytes instanceof Uint8Array) || bytes.length !== KEY_BYTES) {
    throw new KeyError(`publicKey expected Uint8Array of length ${KEY_BYTES}, got ${describe(bytes)}`)
  }
  return bytes
}

function hexKey (name: string, hex: string): Uint8Array {
  if (!/^[0-9a-fA-F]{64}$/.test(hex)) throw new KeyError(`${name} expected 64 hex characters, got ${hex.length} characters`)
  return fromHex(hex.toLowerCase())
}

function describe (value: unknown): string {
  if (value instanceof Uint8Array) return `length=${value.length}`
  return value === null ? 'null' : typeof value
}
