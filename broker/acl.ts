/**
 * Topic access of protocol-v1 §3, as pure functions of who the client is and the topic.
 */
import { TOPIC_PREFIX, upTopic, downTopic } from '../src/protocol/index.js'
import type { Role } from '../src/auth/principal-keys.js'

export type ClientIdentity =
  | { kind: 'principal', id: string, role: Role }
  | { kind: 'anonymous' }

const BRIDGE_PREFIX = 'mn/v1/bridge/'
const NODE_PREFIX = 'mn/v1/n/'
const DOWN_TOPIC = /^mn\/v1\/d\/[0-9a-f]{32}\/down$/

export function isReserved (topic: string): boolean {
  return topic.startsWith(TOPIC_PREFIX)
}

/**
 * `up`: the device's own uplink, handled by the hub's pipeline. `allow`: routed as MQTT.
 * `deny`: acknowledged as its QoS requires and discarded (§3).
 */
export type PublishDecision = 'up' | 'allow' | 'deny'

export function publishDecision (who: ClientIdentity, topic: string): PublishDecision {
  // $SYS/ is the broker's own: Aedes acts on what arrives there ($SYS/<broker>/new/clients
  // closes the session of that client id), so no client may publish into it.
  if (who.kind === 'anonymous') return isReserved(topic) || topic.startsWith('$SYS') ? 'deny' : 'allow'
  switch (who.role) {
    case 'device':
      return topic === upTopic(who.id) ? 'up' : 'deny'
    case 'service':
      return DOWN_TOPIC.test(topic) ? 'allow' : 'deny'
    case 'node':
      return topic.startsWith(NODE_PREFIX) ? 'allow' : 'deny'
  }
}

export function maySubscribe (who: ClientIdentity, filter: string): boolean {
  // $SYS/ names every principal that connects and every filter it holds: not for anonymous eyes.
  if (who.kind === 'anonymous') return !isReserved(filter) && !filter.startsWith('$SYS')
  switch (who.role) {
    case 'device':
      return filter === downTopic(who.id)
    case 'service':
      return filter.startsWith(BRIDGE_PREFIX)
    case 'node':
      return filter.startsWith(BRIDGE_PREFIX) || filter.startsWith(NODE_PREFIX)
  }
}

/**
 * A wildcard such as `#` is granted to an anonymous client, but nothing under mn/v1/ may
 * ever reach it (§2); principals only hold filters inside their own space.
 */
export function mayReceive (who: ClientIdentity, topic: string): boolean {
  return who.kind === 'principal' || (!isReserved(topic) && !topic.startsWith('$SYS/'))
}
