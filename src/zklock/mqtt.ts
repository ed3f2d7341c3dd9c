/**
 * TokenClaim (61) over MQTT: the same claim as POST /v1/zk/claims, answered in the Ack
 * (`result` on success, codes 104–108 on refusal). Body: `{"circuit": "claim", "proof":
 * {...}, "publicSignals": [root, nullifierHash, signalHash, epoch], "recipient": "<64 hex>"}`.
 * The hub rebuilds signalHash from recipient, reward and epoch, so signalHash is not trusted.
 * A claim sent on an authenticated MQTT session is NOT anonymous to the hub: it knows which
 * session sent it. Anonymous claims go over HTTP (docs/zklock.md).
 */
import { MessageType } from '../protocol/index.js'
import { FeatureRejection, type MessageHandler } from '../../broker/index.js'
import { BadRequestError } from '../errors.js'
import { ClaimError, type ClaimService } from './claims.js'

interface TokenClaimBody {
  circuit?: unknown
  proof?: unknown
  publicSignals?: unknown
  recipient?: unknown
}

export function tokenClaimHandlers (claims: ClaimService): Map<number, MessageHandler> {
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
      if (err instanceof ClaimError) throw new FeatureRejection(err.reasonCode, err.reason, err.message)
      if (err instanceof BadRequestError) throw new FeatureRejection(104, 'bad_proof', err.message)
      throw err
    }
  }
  return new Map([[MessageType.TokenClaim, handleClaim]])
}
