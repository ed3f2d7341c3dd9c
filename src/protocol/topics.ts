/**
 * Topic names of §3.
 */
import { messageTypeName } from './constants.js'
import { assertPrincipalId, isPrincipalId } from './ids.js'

/** Everything of protocol v1 lives under this prefix. */
export const TOPIC_PREFIX = 'mn/v1/'

/** Where device id publishes its envelopes. */
export function upTopic (id: string): string {
  assertPrincipalId('id', id)
  return `${TOPIC_PREFIX}d/${id}/up`
}

/** Where the hub and services publish to device id. */
export function downTopic (id: string): string {
  assertPrincipalId('id', id)
  return `${TOPIC_PREFIX}d/${id}/down`
}

/** Where the hub publishes the bridge record of each accepted message of that type from device id. */
export function bridgeTopic (type: number, id: string): string {
  const name = messageTypeName(type)
  if (name === undefined) throw new TypeError(`type expected a message type code of §5, got ${String(type)}`)
  assertPrincipalId('id', id)
  return `${TOPIC_PREFIX}bridge/${name}/${id}`
}

/** The device id and direction of an `up` or `down` topic, or null for any other topic. */
export function parseDeviceTopic (topic: string): { id: string, direction: 'up' | 'down' } | null {
  if (typeof topic !== 'string') return null
  const parts = topic.split('/')
  if (parts.length !== 5 || parts[0] !== 'mn' || parts[1] !== 'v1' || parts[2] !== 'd') return null
  const [, , , id, direction] = parts
  if (!isPrincipalId(id) || (direction !== 'up' && direction !== 'down')) return null
  return { id, direction }
}
