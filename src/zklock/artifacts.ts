/**
 * Where the claim circuit's committed artifacts are (circuits/build: verification key,
 * wasm, zkey), from the source tree (src/zklock) or from the build (dist/src/zklock).
 */
import { existsSync } from 'node:fs'
import { fileURLToPath } from 'node:url'

const CANDIDATES = ['../../circuits/build/', '../../../circuits/build/']

export function circuitArtifact (name: 'verification_key.json' | 'claim.wasm' | 'claim_final.zkey'): string {
  for (const dir of CANDIDATES) {
    const url = new URL(dir + name, import.meta.url)
    if (existsSync(url)) return fileURLToPath(url)
  }
  throw new Error(`circuit artifact ${name} not found next to the package (circuits/build); run npm run circuits:build`)
}
