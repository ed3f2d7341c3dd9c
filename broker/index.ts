/**
 * The embedded Aedes broker with Metanode's hooks. It never binds ports: the hub owns the
 * TCP, TLS and WebSocket listeners and hands each connection to `handle` (Aedes's own
 * pattern). It knows nothing of HTTP.
 */
import { Aedes, type AedesOptions, type Client, type ConnectPacket } from 'aedes'
import type { Duplex } from 'node:stream'
import type { IncomingMessage } from 'node:http'
import type { Logger } from 'pino'
import type { Registry } from 'prom-client'
import { ReplayGuard, type Signer } from '../src/protocol/index.js'
import type { HubConfig } from '../src/config.js'
import { PrincipalDirectory, type PrincipalLookup, type Role } from '../src/auth/principal-keys.js'
import { TokenBucket, BadPacketCounter } from './client-limits.js'
import { guardPacketSize } from './packet-size-guard.js'
import { InOrder } from './in-order.js'
import { RejectionLog } from './rejections.js'
import { createBrokerMetrics } from './metrics.js'
import { UpPipeline, type MessageHandler, type FeatureHandler } from './up-pipeline.js'
import type { FleetIds } from '../src/cluster/fleet-ids.js'
import { DeliveryReceipts, type DeliveryAnnouncements } from './delivery-receipts.js'
import { createAuthenticate } from './authenticate.js'
import { createAuthorizePublish } from './authorize-publish.js'
import { createAuthorizeSubscribe } from './authorize-subscribe.js'
import { createAuthorizeForward } from './authorize-forward.js'
import type { BrokerContext, ClientState } from './context.js'

export { FeatureRejection, type MessageHandler, type FeatureHandler, type AcceptedMessage } from './up-pipeline.js'
export type { PrincipalRecord, PrincipalLookup, Role } from '../src/auth/principal-keys.js'

export interface BrokerOptions {
  config: Readonly<HubConfig>
  /** The hub node's principal id: the src of Acks and key 10 of bridge records. */
  hubId: string
  /** Reads a principal from the registry (the directory caches what it answers). */
  lookupPrincipal: PrincipalLookup
  log: Logger
  registry: Registry
  /** Signs Acks with the hub's key when set. */
  signAck?: Signer
  /** Feature handlers by message type code; a bare function runs after the message is bridged (FeatureHandler says otherwise). */
  handlers?: ReadonlyMap<number, MessageHandler | FeatureHandler>
  /** Told when an authenticated principal's session is ready (after CONNACK), e.g. to send it pending state. */
  onPrincipalReady?: (principal: { id: string, role: Role }) => void
  /**
   * Where Aedes keeps sessions, subscriptions, retained messages and QoS queues; Aedes's
   * in-memory default when absent. Its owner destroys it after close(): Aedes does not.
   */
  persistence?: AedesOptions['persistence']
  /** How Aedes routes messages between processes (mqemitter-redis in cluster mode); in-process when absent. */
  mq?: AedesOptions['mq']
  /**
   * Cluster mode (src/cluster/fleet.ts): the fleet's record of CONNECT nonces and envelope
   * ids, and its channel of delivery receipts (a device's PUBACK seen by any process).
   */
  fleet?: { connectNonces: FleetIds, envelopeIds: FleetIds, deliveries: DeliveryAnnouncements }
}

export interface MetanodeBroker {
  readonly aedes: Aedes
  /** The principals' key cache; the HTTP side shares it so that a revocation reaches both. */
  readonly directory: PrincipalDirectory
  /** Serves one MQTT connection (TCP socket, TLS socket or WebSocket stream). */
  handle (conn: Duplex, req?: IncomingMessage): void
  /** Publishes at QoS 1, never retained; resolves once the broker has taken it. */
  publish (topic: string, payload: Buffer): Promise<void>
  /**
   * Publishes to a principal's down topic and resolves true once its client PUBACKs it,
   * false when that does not happen within timeoutMs (offline, or subscribed at QoS 0).
   */
  publishAndWait (id: string, topic: string, payload: Buffer, timeoutMs: number): Promise<boolean>
  /**
   * Listens in-process on a topic filter (bridge records for the HTTP stream, say); resolves
   * with a function that stops listening. The handler must not throw.
   */
  listen (filter: string, handler: (topic: string, payload: Buffer) => void): Promise<() => Promise<void>>
  /** True while a principal has a live MQTT session on this hub. */
  isOnline (id: string): boolean
  /** Closes a principal's live session at once and refuses it from now on. */
  revoke (id: string): void
  close (): Promise<void>
}

/**
 * Aedes 1.2 re-subscribes a persistent session's listeners before it sends the CONNACK, so a
 * message whose enqueue completes meanwhile is written to the client ahead of its CONNACK
 * (mqtt.js then never completes the connect). With a durable persistence the window is an
 * fsync long. Such a message is always in the session's queue already (Aedes enqueues for
 * persistent sessions before it routes), and the queue is sent right after the CONNACK, so
 * a live delivery before the CONNACK is skipped: not written, not cleared from the queue.
 */
function holdDeliveriesUntilConnack (client: Client): void {
  type Deliver = (packet: unknown, cb: () => void) => void
  const live = client as unknown as { connackSent: boolean, deliverQoS: Deliver, deliver0: Deliver }
  // QoS 0 is at most once: one that would go ahead of the CONNACK is simply not sent.
  for (const name of ['deliverQoS', 'deliver0'] as const) {
    const deliver = live[name]
    live[name] = function deliverAfterConnack (packet, cb) {
      if (live.connackSent) return deliver(packet, cb)
      setImmediate(cb)
    }
  }
}

export async function createBroker (options: BrokerOptions): Promise<MetanodeBroker> {
  const { config, log } = options
  const limits = config.protocol
  const metrics = createBrokerMetrics(options.registry)
  const rejections = new RejectionLog(log, metrics, config.rejectionLogIntervalMs)
  // Ids and nonces are remembered for twice the skew window, as §4 asks: a message
  // stamped at the far edge of the window must still be caught on the way back.
  const guardOptions = { windowMs: 2 * limits.skewMs, perKeyMax: limits.replayIdsPerPrincipalMax, totalMax: limits.replayIdsTotalMax }
  const aedes = new Aedes({
    connectTimeout: 10_000,
    heartbeatInterval: 60_000,
    ...(options.persistence ? { persistence: options.persistence } : {}),
    ...(options.mq ? { mq: options.mq } : {}),
  })
  await aedes.listen()

  const publish = (topic: string, payload: Buffer): Promise<void> => new Promise((resolve, reject) => {
    aedes.publish({ cmd: 'publish', topic, payload, qos: 1, retain: false, dup: false }, err => err ? reject(err) : resolve())
  })

  const ctx: BrokerContext = {
    config,
    log,
    // In cluster mode a revocation announced while this process was cut off from Redis is
    // missed (pub/sub is at-most-once): cached principals are read again after 5 s.
    directory: new PrincipalDirectory(options.lookupPrincipal, 100_000, config.cluster ? 5_000 : Infinity),
    connectNonces: new ReplayGuard(guardOptions),
    fleetNonces: options.fleet?.connectNonces,
    clients: new WeakMap(),
    dropped: new WeakSet(),
    rejections,
    metrics,
    receipts: new DeliveryReceipts(options.fleet?.deliveries),
    pipeline: new UpPipeline({
      hubId: options.hubId,
      limits,
      replay: new ReplayGuard(guardOptions),
      fleetIds: options.fleet?.envelopeIds,
      publish,
      rejections,
      metrics,
      signAck: options.signAck,
      handlers: options.handlers ?? new Map(),
      log,
    }),
    countBad (client, state, reason) {
      if (reason) rejections.record(reason, state.identity?.kind === 'principal' ? state.identity.id : client.id)
      if (state.badPackets.add()) {
        metrics.disconnectsForAbuse.inc()
        log.warn({ clientId: client.id }, 'disconnecting client after repeated bad traffic')
        setImmediate(() => client.close())
      }
    },
  }

  aedes.preConnect = (client: Client, packet: ConnectPacket, done: (err: Error | null, ok: boolean) => void) => {
    const state = ctx.clients.get(client)
    if (state) {
      state.sentClientId = packet.clientId
      state.cleanSession = packet.clean !== false
    }
    holdDeliveriesUntilConnack(client)
    done(null, true)
  }
  aedes.authenticate = createAuthenticate(ctx)
  aedes.authorizePublish = createAuthorizePublish(ctx)
  aedes.authorizeSubscribe = createAuthorizeSubscribe(ctx)
  aedes.authorizeForward = createAuthorizeForward(ctx)

  // Acknowledged-but-dropped packets stop here instead of being routed.
  const routePublish = aedes.publish.bind(aedes)
  aedes.publish = function publishUnlessDropped (packet, clientOrDone?: unknown, done?: unknown) {
    if (ctx.dropped.has(packet)) {
      const callback = (typeof clientOrDone === 'function' ? clientOrDone : done) as ((err?: Error) => void) | undefined
      if (callback) process.nextTick(callback)
      return
    }
    return (routePublish as (...args: unknown[]) => void)(packet, clientOrDone, done)
  } as Aedes['publish']

  aedes.on('clientReady', client => {
    metrics.clients.inc()
    const identity = ctx.clients.get(client)?.identity
    // A CONNECT that raced a revocation registers after it: look once more now. A
    // revocation drops the cached entry (revoke below), so this reads the store only then.
    if (identity?.kind === 'principal') {
      ctx.directory.get(identity.id).then(principal => {
        if (principal?.revoked !== false) return client.close()
        options.onPrincipalReady?.({ id: identity.id, role: identity.role })
      }, (err: unknown) => {
        // Whether it was revoked cannot be told now: the session ends, the client reconnects.
        log.warn({ err, clientId: client.id }, 'the principal could not be read again; closing the new session')
        client.close()
      })
    }
  })
  aedes.on('clientDisconnect', () => metrics.clients.dec())
  aedes.on('connectionError', (client, err) => log.debug({ err: err.message }, 'connection error before CONNECT completed'))
  aedes.on('clientError', (client, err) => log.debug({ clientId: client.id, err: err.message }, 'client error'))

  let closed: Promise<void> | null = null
  return {
    aedes,
    directory: ctx.directory,
    handle (conn, req) {
      const client = aedes.handle(conn, req) as Client & { _parser: { parse (buf: Buffer): number } }
      ctx.clients.set(client, {
        sentClientId: '',
        cleanSession: true,
        identity: null,
        principal: null,
        publishes: new TokenBucket(config.clients.publishesPerSecond, config.clients.publishBurst),
        badPackets: new BadPacketCounter(config.clients.badPacketsMax, config.clients.badPacketsWindowMs),
        order: new InOrder(),
      } satisfies ClientState)
      // PUBACK and PUBCOMP end the hub's waits for delivery (DeliveryReceipts).
      ;(client._parser as unknown as NodeJS.EventEmitter).on('packet', (packet: { cmd: string, messageId?: number }) => {
        if ((packet.cmd === 'puback' || packet.cmd === 'pubcomp') && packet.messageId !== undefined) ctx.receipts.acknowledged(client, packet.messageId)
      })
      guardPacketSize(client._parser, config.clients.packetBytesMax, err => {
        metrics.disconnectsForAbuse.inc()
        rejections.record('too_large', client.id)
        conn.destroy(err)
      })
    },
    publish,
    async publishAndWait (id, topic, payload, timeoutMs) {
      const delivered = ctx.receipts.expect(payload, id, timeoutMs)
      await publish(topic, payload)
      return delivered
    },
    listen (filter, handler) {
      const deliver = (packet: { topic: string, payload: Buffer | string }, cb: () => void): void => {
        handler(packet.topic, Buffer.isBuffer(packet.payload) ? packet.payload : Buffer.from(packet.payload))
        cb()
      }
      return new Promise((resolve, reject) => {
        // Aedes types the callback without its error argument; mqemitter passes one.
        const subscribed = ((err?: Error) => {
          if (err) return reject(err)
          resolve(() => new Promise<void>(done => aedes.unsubscribe(filter, deliver, () => done())))
        }) as () => void
        aedes.subscribe(filter, deliver, subscribed)
      })
    },
    isOnline (id) {
      return (aedes as unknown as { clients: Record<string, Client | undefined> }).clients[id] !== undefined
    },
    revoke (id) {
      ctx.directory.forget(id)
      const client = (aedes as unknown as { clients: Record<string, Client | undefined> }).clients[id]
      if (client) {
        log.info({ principalId: id }, 'closing the session of a revoked principal')
        client.close()
      }
    },
    close () {
      closed ??= new Promise(resolve => aedes.close(() => resolve()))
      return closed
    },
  }
}
