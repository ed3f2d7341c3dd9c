/**
 * Delivery filter: nothing under mn/v1/ ever reaches an anonymous client, whatever
 * wildcard it holds (§2).
 */
import type { Client, AedesPublishPacket } from 'aedes'
import { mayReceive } from './acl.js'
import type { BrokerContext } from './context.js'

export function createAuthorizeForward (ctx: BrokerContext) {
  return function authorizeForward (client: Client, packet: AedesPublishPacket): AedesPublishPacket | null {
    const identity = ctx.clients.get(client)?.identity
    if (!identity) return null
    return mayReceive(identity, packet.topic) ? packet : null
  }
}
