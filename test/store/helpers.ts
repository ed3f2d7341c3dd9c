import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { TestContext } from 'node:test'
import { keygenAsync } from '@noble/ed25519'

/** A fresh directory under the OS temp dir, removed after the test. */
export async function tempDir (t: TestContext): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'metanode-store-'))
  t.after(() => rm(dir, { recursive: true, force: true }))
  return dir
}

export async function newPublicKey (): Promise<Uint8Array> {
  return (await keygenAsync()).publicKey
}

export function hex (bytes: Uint8Array): string {
  return Buffer.from(bytes).toString('hex')
}
