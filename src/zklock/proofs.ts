/**
 * Identified proofs (ProofSubmission, type 60): a device proves a statement of the claim
 * circuit over its authenticated session, and the hub says whether the proof holds. Unlike a
 * claim, nothing is recorded or credited and the public signals are the device's own
 * statement; the hub still refuses a root that is not one of its own (a proof of
 * membership in a foreign tree says nothing here) and verifies in the worker pool.
 */
import { PUBLIC_SIGNALS } from '../../circuits/claim-inputs.js'
import { BadRequestError } from '../errors.js'
import { ClaimError, canonicalField, verifyOrBusy, type ClaimServiceOptions } from './claims.js'
import { isWellFormedRequest } from './verifier-pool.js'

/** The circuits the hub has keys for. */
export const KNOWN_CIRCUITS = ['claim'] as const

export interface ProofStatement {
  circuit: unknown
  proof: unknown
  publicSignals: unknown
}

export interface VerifiedProof {
  circuit: string
  /** The public signals as verified, canonical decimal strings. */
  publicSignals: string[]
}

export interface ProofChecker {
  /** Resolves for a proof that verifies against one of the hub's roots; ClaimError otherwise. */
  check (statement: ProofStatement): Promise<VerifiedProof>
}

export function createProofChecker (options: Pick<ClaimServiceOptions, 'tree' | 'verifier'>): ProofChecker {
  const { tree, verifier } = options
  return {
    async check ({ circuit, proof, publicSignals }) {
      if (circuit !== 'claim') throw new ClaimError('unknown_circuit', `the hub verifies proofs of the circuits ${KNOWN_CIRCUITS.join(', ')} only`)
      if (!Array.isArray(publicSignals) || publicSignals.length !== PUBLIC_SIGNALS.length) {
        throw new ClaimError('bad_proof', `the claim circuit has ${PUBLIC_SIGNALS.length} public signals: ${PUBLIC_SIGNALS.join(', ')}`)
      }
      let signals: string[]
      try {
        signals = publicSignals.map((s, i) => canonicalField(PUBLIC_SIGNALS[i], s))
      } catch (err) {
        if (err instanceof BadRequestError) throw new ClaimError('bad_proof', err.message, { cause: err })
        throw err
      }
      if (!await tree.isKnownRoot(signals[0])) throw new ClaimError('unknown_root', 'the root is not a current or recent root of the identity tree')
      if (!isWellFormedRequest(proof, signals, signals.length)) throw new ClaimError('bad_proof', 'the proof is malformed')
      if (!await verifyOrBusy(verifier, proof, signals)) throw new ClaimError('bad_proof', 'the proof does not verify for these public signals')
      return { circuit, publicSignals: signals }
    },
  }
}
