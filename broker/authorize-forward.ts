/**
 * Delivery filter, run for every message about to reach a client:
 * - nothing under mn/v1/ and nothing under $SYS/ ever reaches an anonymous client,
 *   whatever wildcard it holds (§2; $SYS names every principal that connects);
 * - [MQTT-3.8.4-6]: a message goes out at no more than the QoS granted to the client.
 *   Aedes 1.2 lowers it only when the filter equals the topic, so a QoS 2 message reached a
 *   `+` subscriber granted QoS 1 at QoS 2; here the highest QoS among the client's matching
 *   filters caps it.
 */
import type { Client, AedesPublishPacket } from 'aedes'
import { mayReceive } from './acl.js'
import type { BrokerContext } from './context.js'

type Subscriptions = Record<string, { qos: number } | undefined>

export function createAuthorizeForward (ctx: BrokerContext) {
  return function authorizeForward (client: Client, packet: AedesPublishPacket): AedesPublishPacket | null {
    const identity = ctx.clients.get(client)?.identity
    if (!identity || !mayReceive(identity, packet.topic)) return null
    if (packet.qos === 0) return packet
    packet = ctx.receipts.forward(client, packet)
    const granted = grantedQos((client as Client & { subscriptions: Subscriptions }).subscriptions, packet.topic)
    if (granted === null || granted >= packet.qos) return packet
    return { ...packet, qos: granted as 0 | 1 | 2 }
  }
}

/** The highest QoS among the filters that match topic, or null when none does. */
function grantedQos (subscriptions: Subscriptions, topic: string): number | null {
  const exact = subscriptions[topic]
  if (exact?.qos === 2) return 2
  let best = exact ? exact.qos : -1
  const levels = topic.split('/')
  for (const filter in subscriptions) {
    const qos = subscriptions[filter]!.qos
    if (qos > best && filter !== topic && matches(filter, levels)) best = qos
  }
  return best < 0 ? null : best
}

/** MQTT topic filter matching (§4.7): `+` one level, `#` the parent and any levels below. */
function matches (filter: string, levels: string[]): boolean {
  const parts = filter.split('/')
  for (let i = 0; i < parts.length; i++) {
    const part = parts[i]
    if (part === '#') return true
    if (i >= levels.length) return false
    if (part !== '+' && part !== levels[i]) return false
  }
  return parts.length === levels.length
}
