/**
 * What a service may put on a device's `down` topic. Devices trust what arrives there, so
 * the hub checks it as it checks an uplink: a readable envelope (or batch), src = the
 * authenticated service, a type allowed down, never an Ack (only the hub answers a device's
 * message), the skew window, and a valid signature when it is signed. A down publish is one
 * unit for the device: one bad item refuses it whole.
 */
import { parsePayload, checkEnvelope, MessageType, type RejectReason } from '../src/protocol/index.js'
import type { ProtocolLimits } from '../src/config.js'
import { verifyEd25519, type KnownPrincipal } from '../src/auth/principal-keys.js'

export async function checkServiceDown (service: KnownPrincipal, payload: Buffer, limits: ProtocolLimits): Promise<RejectReason | null> {
  const parsed = parsePayload(payload, { payloadBytesMax: limits.payloadBytesMax, direction: 'down' })
  if (!parsed.ok) return parsed.reason
  const nowMs = Date.now()
  for (const item of parsed.items) {
    const reason = checkEnvelope(item, { principalId: service.id, nowMs, skewMs: limits.skewMs })
    if (reason) return reason
    if (item.envelope?.type === MessageType.Ack) return 'type'
    if (item.cose && !(await verifyEd25519(service.key, item.cose.sigInput, item.cose.signature))) return 'signature'
  }
  return null
}
