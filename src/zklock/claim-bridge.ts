/**
 * What services see of an accepted claim: a bridge record (§6) on
 * `mn/v1/bridge/token_claim/{hub id}` whose src is the hub, never the device (the hub does
 * not know it for an HTTP claim, and must not tell it for an MQTT one). Key 12 holds an
 * envelope the hub wrote (type 61, src the hub, signed with the hub's key when the hub signs
 * what it sends), whose body carries the claim and the proof, so that a service can verify
 * the proof itself against the verification key.
 */
import { MessageType, bridgeTopic, encodeBridgeRecord, encodeEnvelope, idBytes, signEnvelope, type Signer } from '../protocol/index.js'
import type { AcceptedClaim } from './claims.js'

export interface ClaimBridgeOptions {
  hubId: string
  /** Signs the record's envelope with the hub's key when given. */
  sign?: Signer
  /** Publishes at QoS 1; resolves once the broker has taken it. */
  publish (topic: string, payload: Buffer): Promise<void>
}

/** The body services read (docs/zklock.md §11): field elements as decimal strings. */
export function claimBridgeBody (claim: AcceptedClaim): Record<string, unknown> {
  return {
    nullifier: claim.nullifier,
    recipient: claim.recipient,
    amount: claim.amount,
    epoch: claim.epoch,
    root: claim.root,
    circuit: 'claim',
    proof: claim.proof,
    publicSignals: claim.publicSignals,
  }
}

export function createClaimBridge (options: ClaimBridgeOptions): (claim: AcceptedClaim) => Promise<void> {
  const { hubId, sign, publish } = options
  return claim => {
    const body = claimBridgeBody(claim)
    const envelope = encodeEnvelope({ type: MessageType.TokenClaim, src: hubId, ts: claim.claimedMs, body })
    const raw = sign ? signEnvelope(envelope, idBytes(hubId), sign) : envelope
    const record = encodeBridgeRecord({ type: MessageType.TokenClaim, src: hubId, receivedAt: claim.claimedMs, body, hubId, signed: sign !== undefined, raw })
    return publish(bridgeTopic(MessageType.TokenClaim, hubId), Buffer.from(record.buffer, record.byteOffset, record.byteLength))
  }
}
