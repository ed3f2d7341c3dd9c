/**
 * Node-only helpers of the device SDK, kept out of the main entry so that it stays
 * browser-safe: a KeyStore backed by a JSON key file, the format `metanode keygen` writes.
 */
import { mkdir, readFile, rename, writeFile, unlink } from 'node:fs/promises'
import { dirname } from 'node:path'
import { randomBytes } from 'node:crypto'
import { exportKeyPair, importKeyPair, type KeyPair, type KeyStore } from './keys.js'
import { KeyError } from './errors.js'

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
