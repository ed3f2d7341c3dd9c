/**
 * PUBLISH access (§3), the device uplink, and the check of what services send down. A refused PUBLISH is acknowledged as its QoS
 * requires and then discarded: Aedes 1.x has no "acknowledge and drop" (an error here
 * disconnects), so the packet is marked in `ctx.dropped` and the broker's publish skips
 * it. The uplink is handled here, before Aedes sends the PUBACK, so that a PUBACK means
 * the message was judged and, if accepted, bridged.
 */
import type { Client, PublishPacket } from 'aedes'
import { publishDecision } from './acl.js'
import { checkServiceDown } from './down-check.js'
import type { BrokerContext } from './context.js'

export function createAuthorizePublish (ctx: BrokerContext) {
  return function authorizePublish (client: Client | null, packet: PublishPacket, done: (err?: Error | null) => void): void {
    if (!client) return done(null)
    const state = ctx.clients.get(client)
    if (!state?.identity) return done(new Error('publish before authentication'))
    const decision = publishDecision(state.identity, packet.topic)

    if (decision === 'deny') {
      ctx.dropped.add(packet)
      ctx.countBad(client, state, 'acl')
      return done(null)
    }

    // Rate limit by delay: Aedes reads no more from this socket until `done`, so TCP flow
    // control slows the sender down and nothing is lost.
    const waitMs = state.publishes.take()
    const proceed = (): void => {
      if (decision === 'allow') {
        if (state.identity?.kind !== 'principal') return done(null)
        // Down commands and node traffic are never retained: a retained command would run
        // again on every reconnect.
        packet.retain = false
        if (state.identity.role !== 'service') return done(null)
        checkServiceDown(state.principal!, packet.payload as Buffer, ctx.config.protocol).then(reason => {
          if (reason) {
            ctx.dropped.add(packet)
            ctx.countBad(client, state, reason)
          }
          done(null)
        }, done)
        return
      }
      // The raw uplink is never routed: only the hub consumes it.
      ctx.dropped.add(packet)
      ctx.pipeline.process(state.principal!, packet.payload as Buffer, state.order).then(rejected => {
        if (rejected > 0) ctx.countBad(client, state, '')
        done(null)
      }, done)
    }
    if (waitMs > 0) setTimeout(proceed, waitMs)
    else proceed()
  }
}
