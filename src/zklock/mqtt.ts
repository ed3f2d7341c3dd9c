/**
 * ZK messages over MQTT, answered in the Ack (`result` on success, codes 104–109 on refusal):
 *
 * - TokenClaim (61): the same claim as POST /v1/zk/claims. Body: `{"circuit": "claim",
 *   "proof": {...}, "publicSignals": [root, nullifierHash, signalHash, epoch], "recipient":
 *   "<64 hex>"}`. The hub rebuilds signalHash from recipient, reward and epoch, so signalHash
 *   is not trusted. The envelope itself is never bridged (it names the device): the claim
 *   service bridges the accepted claim without it. Still, a claim sent on an authenticated
 *   MQTT session is NOT anonymous to the hub, which knows which session sent it. Anonymous
 *   claims go over HTTP (docs/zklock.md).
 * - ProofSubmission (60): an identified proof (src/zklock/proofs.ts), bridged with the
 *   device's id once it verified, and only then.
 */
import { MessageType } from '../protocol/index.js'
import { FeatureRejection, type FeatureHandler, type MessageHandler } from '../../broker/index.js'
import { BadRequestError } from '../errors.js'
import { ClaimError, type ClaimService } from './claims.js'
import type { ProofChecker, ProofStatement } from './proofs.js'

interface TokenClaimBody extends ProofStatement {
  recipient?: unknown
}

/** A ClaimError (or a request the claim service found malformed) as the Ack's refusal. */
function asRejection (err: unknown): unknown {
  if (err instanceof ClaimError) return new FeatureRejection(err.reasonCode, err.reason, err.message)
  if (err instanceof BadRequestError) return new FeatureRejection(104, 'bad_proof', err.message)
  return err
}

export function zkMqttHandlers (claims: ClaimService, proofs: ProofChecker): Map<number, FeatureHandler> {
  const handleClaim: MessageHandler = async ({ envelope }) => {
    const body = envelope.body as TokenClaimBody
    const signals = body.publicSignals
    if (body.circuit !== 'claim' || !Array.isArray(signals) || signals.length !== 4 || typeof body.recipient !== 'string') {
      throw new FeatureRejection(104, 'bad_proof', 'a TokenClaim needs circuit "claim", four public signals and a recipient')
    }
    try {
      return await claims.claim({
        proof: body.proof,
        recipient: body.recipient,
        root: String(signals[0]),
        nullifierHash: String(signals[1]),
        epoch: Number(signals[3]),
      })
    } catch (err) {
      throw asRejection(err)
    }
  }

  const handleProof: MessageHandler = async ({ envelope }) => {
    try {
      return await proofs.check(envelope.body as ProofStatement)
    } catch (err) {
      throw asRejection(err)
    }
  }

  return new Map([
    [MessageType.TokenClaim, { handle: handleClaim, bridge: 'never' }],
    [MessageType.ProofSubmission, { handle: handleProof, bridge: 'accepted' }],
  ])
}
