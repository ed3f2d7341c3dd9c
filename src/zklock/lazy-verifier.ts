/**
 * The hub's proof verifier, started on the first proof: most hubs (and every test hub)
 * never verify one, and each worker loads snarkjs and builds a curve when it starts.
 */
import { readFileSync } from 'node:fs'
import { createVerifierPool, type VerifierPool } from './verifier-pool.js'

export interface LazyVerifier {
  verify (proof: unknown, publicSignals: string[]): Promise<boolean>
  /** Proofs queued or being verified (0 before the pool starts). */
  readonly pending: number
  close (): Promise<void>
}

export function lazyVerifier (verificationKeyFile: URL | string, options: { size?: number, queueMax: number }): LazyVerifier {
  let pool: VerifierPool | null = null
  let closed = false
  return {
    verify (proof, publicSignals) {
      if (closed) return Promise.reject(new Error('the verifier is closed'))
      pool ??= createVerifierPool({ verificationKey: JSON.parse(readFileSync(verificationKeyFile, 'utf8')), ...options })
      return pool.verify(proof, publicSignals)
    },
    get pending () {
      return pool?.pending ?? 0
    },
    async close () {
      closed = true
      await pool?.close()
    },
  }
}
