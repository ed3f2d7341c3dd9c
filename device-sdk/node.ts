/**
 * Node-only helpers of the device SDK, kept out of the main entry so that it stays
 * browser-safe: a KeyStore backed by a JSON key file, the format `metanode keygen` writes;
 * for the ZK side (`./zk.js`), a file store for the identity secret and the circuit's
 * artifacts from the package.
 */
import { existsSync } from 'node:fs'
import { mkdir, readFile, rename, writeFile, unlink } from 'node:fs/promises'
import { dirname } from 'node:path'
import { randomBytes } from 'node:crypto'
import { fileURLToPath } from 'node:url'
import { exportKeyPair, importKeyPair, type KeyPair, type KeyStore } from './keys.js'
import { KeyError, MetanodeSdkError } from './errors.js'
import type { ZkIdentityStore } from './zk-identity.js'
import type { ClaimArtifacts } from './zk-prove.js'

export * from './index.js'

/** Owner read/write only: the file holds the device's secret key. */
const KEY_FILE_MODE = 0o600

/**
 * A key pair in a JSON file `{ "secretKey": hex, "publicKey": hex, "id": ... }`, written
 * with mode 0600 through a temporary file and a rename, so that a crash mid-write never
 * leaves a truncated key behind.
 */
export class FileKeyStore implements KeyStore {
  readonly path: string

  constructor (path: string) {
    this.path = path
  }

  async load (): Promise<KeyPair | null> {
    let text: string
    try {
      text = await readFile(this.path, 'utf8')
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null
      throw err
    }
    try {
      return importKeyPair(text)
    } catch (err) {
      throw new KeyError(`${this.path}: ${(err as Error).message}`)
    }
  }

  async save (keyPair: KeyPair): Promise<void> {
    await mkdir(dirname(this.path), { recursive: true, mode: 0o700 })
    const temp = `${this.path}.${randomBytes(6).toString('hex')}.tmp`
    try {
      // `mode` applies when the file is created (umask can only narrow it); `wx` refuses
      // to reuse a file someone else created with wider permissions.
      await writeFile(temp, JSON.stringify(exportKeyPair(keyPair), null, 2) + '\n', { mode: KEY_FILE_MODE, flag: 'wx' })
      await rename(temp, this.path)
    } catch (err) {
      await unlink(temp).catch(() => {})
      throw err
    }
  }
}

/** Reads a key file such as `metanode keygen` writes. */
export async function readKeyFile (path: string): Promise<KeyPair> {
  const keyPair = await new FileKeyStore(path).load()
  if (!keyPair) throw new KeyError(`${path}: no such key file`)
  return keyPair
}

/**
 * The ZK identity secret in a file of its own (the text exportZkIdentity writes and a
 * newline), mode 0600, written like FileKeyStore's key file. Keep it as safe as the device
 * key and back it up with the same care: whoever reads it can claim as this device, and a
 * device that loses it can never claim again (the hub keeps one commitment per device).
 */
export class FileZkIdentityStore implements ZkIdentityStore {
  readonly path: string

  constructor (path: string) {
    this.path = path
  }

  async load (): Promise<string | undefined> {
    try {
      return (await readFile(this.path, 'utf8')).trim()
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
      throw err
    }
  }

  async save (secret: string): Promise<void> {
    if (typeof secret !== 'string' || secret.length === 0 || /\s/.test(secret)) throw new KeyError('a ZK identity secret to save must be a non-empty string without spaces')
    await writePrivateFile(this.path, secret + '\n')
  }
}

/** As FileKeyStore.save writes: mode 0600, through a temporary file and a rename (never a truncated file). */
async function writePrivateFile (path: string, text: string): Promise<void> {
  await mkdir(dirname(path), { recursive: true, mode: 0o700 })
  const temp = `${path}.${randomBytes(6).toString('hex')}.tmp`
  try {
    await writeFile(temp, text, { mode: KEY_FILE_MODE, flag: 'wx' })
    await rename(temp, path)
  } catch (err) {
    await unlink(temp).catch(() => {})
    throw err
  }
}

// From the source (device-sdk/node.ts) or from the build (dist/device-sdk/node.js); the
// package's `files` ships circuits/build next to dist.
const CIRCUIT_DIRS = ['../circuits/build/', '../../circuits/build/']

/** Where the package's claim circuit artifacts are: claim.wasm and claim_final.zkey. */
export function claimArtifactPaths (): { wasm: string, zkey: string } {
  return { wasm: circuitFile('claim.wasm'), zkey: circuitFile('claim_final.zkey') }
}

/**
 * The package's claim.wasm and claim_final.zkey, read into memory (about 5 MB) for
 * ZkClaimer and proveClaim. They are the development keys unless a release replaced them
 * with the production ones: they must be the hub's (docs/zklock.md §6).
 */
export async function loadClaimArtifacts (): Promise<ClaimArtifacts & { wasm: Uint8Array, zkey: Uint8Array }> {
  const paths = claimArtifactPaths()
  const [wasm, zkey] = await Promise.all([readFile(paths.wasm), readFile(paths.zkey)])
  return { wasm: new Uint8Array(wasm.buffer, wasm.byteOffset, wasm.byteLength), zkey: new Uint8Array(zkey.buffer, zkey.byteOffset, zkey.byteLength) }
}

function circuitFile (name: string): string {
  for (const dir of CIRCUIT_DIRS) {
    const url = new URL(dir + name, import.meta.url)
    if (existsSync(url)) return fileURLToPath(url)
  }
  throw new MetanodeSdkError(`the claim circuit's ${name} is not next to the package (circuits/build); run npm run circuits:build`)
}
