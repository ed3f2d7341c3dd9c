/**
 * The small facts that must hold at once on every process of a fleet (design.md, "the way
 * past it"), kept in the fleet's Redis:
 *
 * - ids seen: CONNECT nonces, envelope ids and signed-request nonces. `firstSeen` is one
 *   `SET key 1 PX ttl NX` per id, pipelined, so that of two processes seeing the same id
 *   exactly one gets "first" (Redis runs commands one at a time);
 * - revocations: a revoked principal's id is published on a channel every process listens
 *   to, and each closes the session if it holds it and forgets the cached key;
 * - delivery receipts: a device's PUBACK of a `down` message, published by the process it
 *   is connected to, so that the process waiting for it (`wait` of the messages API) hears.
 *
 * Each process keeps its local guards too: they answer a replay on the same process
 * without a round trip, and Redis settles the rest.
 */
import { once } from 'node:events'
import { Redis } from 'ioredis'
import type { Logger } from 'pino'
import { redactUrl } from '../log.js'
import type { ClusterConfig } from '../config.js'
import type { FleetIds } from './fleet-ids.js'
import type { DeliveryAnnouncements } from '../../broker/delivery-receipts.js'

export interface FleetFacts {
  /** The record of one kind of id (`connect`, `up`, `http`), each remembered for ttlMs. */
  ids (scope: string, ttlMs: number): FleetIds
  /** Tells every process (this one included) that a principal was revoked. */
  announceRevocation (id: string): Promise<void>
  /**
   * The fleet's shared command connection (auto-pipelined), for components that send plain
   * commands (presence, rate limits); never put it in subscriber mode.
   */
  readonly redis: Redis
  /** Called on every process for each announced revocation. */
  onRevocation (listener: (id: string) => void): void
  /** The channel of delivery receipts: a device's PUBACK of a `down` message, seen by any process. */
  readonly deliveries: DeliveryAnnouncements
  /**
   * A fresh ioredis connection, once it is ready, for a component that needs its own
   * (Aedes's emitter and persistence); closed with this. Ready first, because a connection
   * that enters subscriber mode before ioredis's ready check fails that check.
   */
  connection (): Promise<Redis>
  close (): Promise<void>
}

const PRINCIPAL_ID = /^[0-9a-f]{32}$/
// A principal id (the client id of every principal) and a payload's SHA-256.
const DELIVERY_RECEIPT = /^[0-9a-f]{32} [0-9a-f]{64}$/


export async function connectFleet (config: ClusterConfig, log: Logger): Promise<FleetFacts> {
  const connections: Redis[] = []
  const open = (): Redis => {
    // Commands wait in the client's queue while it reconnects, but not forever: a request
    // fails after 3 retries instead of hanging, and the caller refuses what it was checking.
    const redis = new Redis(config.redisUrl, { maxRetriesPerRequest: 3, enableAutoPipelining: true })
    redis.on('error', err => log.warn({ err: err.message }, 'redis connection error'))
    connections.push(redis)
    return redis
  }
  const connection = async (): Promise<Redis> => {
    const redis = open()
    if (redis.status !== 'ready') await once(redis, 'ready')
    return redis
  }
  const commands = await connection()
  const subscriber = await connection()
  const revokedChannel = `${config.keyPrefix}revoked`
  const deliveredChannel = `${config.keyPrefix}delivered`
  const listeners: Array<(id: string) => void> = []
  const deliveryListeners: Array<(clientId: string, digest: string) => void> = []
  await subscriber.subscribe(revokedChannel, deliveredChannel)
  subscriber.on('message', (channel: string, message: string) => {
    if (channel === revokedChannel && PRINCIPAL_ID.test(message)) {
      for (const listener of listeners) listener(message)
    } else if (channel === deliveredChannel && DELIVERY_RECEIPT.test(message)) {
      const [clientId, digest] = message.split(' ')
      for (const listener of deliveryListeners) listener(clientId, digest)
    }
  })
  log.info({ redis: redactUrl(config.redisUrl), keyPrefix: config.keyPrefix }, 'cluster mode: sharing the fleet through redis')

  let closed: Promise<void> | null = null
  return {
    redis: commands,
    ids (scope, ttlMs) {
      const prefix = `${config.keyPrefix}seen:${scope}:`
      return {
        async firstSeen (entries) {
          if (entries.length === 0) return []
          const pipeline = commands.pipeline()
          for (const [key, id] of entries) pipeline.set(`${prefix}${key}:${id}`, '1', 'PX', ttlMs, 'NX')
          const results = await pipeline.exec()
          if (results === null) throw new Error('redis refused the pipeline')
          return results.map(([err, reply]) => {
            if (err) throw err
            return reply === 'OK'
          })
        },
      }
    },
    async announceRevocation (id) {
      await commands.publish(revokedChannel, id)
    },
    onRevocation (listener) {
      listeners.push(listener)
    },
    deliveries: {
      announce (clientId, digest) {
        // At most once, like the channel itself: a lost receipt makes a wait end undelivered.
        commands.publish(deliveredChannel, `${clientId} ${digest}`).catch((err: unknown) => log.warn({ err }, 'a delivery receipt could not be announced'))
      },
      subscribe (listener) {
        deliveryListeners.push(listener)
      },
    },
    connection,
    close () {
      closed ??= Promise.all(connections.map(c => c.quit().catch(() => c.disconnect()))).then(() => undefined)
      return closed
    },
  }
}
