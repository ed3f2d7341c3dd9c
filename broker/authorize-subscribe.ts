/**
 * SUBSCRIBE access (§2, §3): a refused filter gets return code 0x80 and the others in
 * the same SUBSCRIBE are still granted.
 */
import type { Client, Subscription } from 'aedes'
import { maySubscribe } from './acl.js'
import type { BrokerContext } from './context.js'

export function createAuthorizeSubscribe (ctx: BrokerContext) {
  const subscriptionsMax = ctx.config.clients.subscriptionsMax
  return function authorizeSubscribe (client: Client, sub: Subscription, done: (err: Error | null, sub?: Subscription | null) => void): void {
    const state = ctx.clients.get(client)
    if (!state?.identity || !maySubscribe(state.identity, sub.topic)) {
      if (state) ctx.countBad(client, state, 'acl')
      return done(null, null)
    }
    // Aedes keeps a client's granted filters on `subscriptions` (not in its typings).
    const held = (client as Client & { subscriptions: Record<string, unknown> }).subscriptions
    if (Object.keys(held).length >= subscriptionsMax && !(sub.topic in held)) return done(null, null)
    done(null, sub)
  }
}
