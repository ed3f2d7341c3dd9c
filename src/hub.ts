/**
 * Composes the hub from one typed config: store, node key, broker, HTTP gateway and the
 * MQTT listeners (TCP, TLS, WebSocket on the HTTP port). Opens them in that order and
 * closes them in reverse; SIGTERM takes the same path through the CLI.
 */
import { createServer as createTcpServer, type Server as TcpServer, type Socket } from 'node:net'
import { createServer as createTlsServer } from 'node:tls'
import { mkdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import type { AddressInfo } from 'node:net'
import type { IncomingMessage } from 'node:http'
import type { Duplex } from 'node:stream'
import { WebSocketServer, createWebSocketStream } from 'ws'
import { Gauge, Registry, collectDefaultMetrics } from 'prom-client'
import type { FastifyInstance } from 'fastify'
import { resolveConfig, type HubConfig, type HubConfigInput } from './config.js'
import { createLogger, redactUrl, type Logger } from './log.js'
import { openStore, type Store } from './store/index.js'
import { createHttpServer, type HttpServerOptions } from './http/server.js'
import { loadOrCreateAdminToken } from './http/admin-token.js'
import { loadOrCreateNodeKey } from './node-key.js'
import { createBroker, type FeatureHandler, type MessageHandler, type MetanodeBroker } from '../broker/index.js'
import { MessageType, downTopic } from './protocol/index.js'
import { AuditLog, PolicyStore } from './cage/index.js'
import { createStateService, type StateService } from './state/service.js'
import { createStateMqtt } from './state/mqtt.js'
import { createDownSender } from './down-sender.js'
import { TreeStore } from './zklock/tree-store.js'
import { createClaimService } from './zklock/claims.js'
import { zkMqttHandlers } from './zklock/mqtt.js'
import { createProofChecker } from './zklock/proofs.js'
import { createClaimBridge } from './zklock/claim-bridge.js'
import { connectFleet, type FleetFacts } from './cluster/fleet.js'
import { brokerBackends, type BrokerBackends } from './cluster/broker-backends.js'
import { trackPresence, type FleetPresence } from './cluster/presence.js'
import { fleetRateCounter } from './cluster/fleet-rate-counter.js'
import { lazyVerifier, type LazyVerifier } from './zklock/lazy-verifier.js'
import { circuitArtifact } from './zklock/artifacts.js'

export interface HubOptions extends HubConfigInput {
  /** A logger to use instead of creating one from `logLevel`. */
  logger?: Logger
}

export interface Hub {
  readonly config: Readonly<HubConfig>
  /** The hub node's principal id (src of its Acks, key 10 of bridge records). */
  readonly nodeId: string
  readonly mqttPort: number
  readonly httpPort: number
  readonly tlsPort: number | null
  readonly adminToken: string
  readonly store: Store
  readonly broker: MetanodeBroker
  /** Device state documents (docs/protocol.md §14). */
  readonly state: StateService
  /** The hash-chained audit log (HTTP CAGE). */
  readonly audit: AuditLog
  /** The HTTP gateway's policy rules. */
  readonly policies: PolicyStore
  readonly registry: Registry
  close (): Promise<void>
}

/** Cluster mode: the gateway's and the policy engine's rate limits, counted in the fleet's Redis. */
function fleetLimits (fleet: FleetFacts, keyPrefix: string): Pick<HttpServerOptions, 'rateLimitRedis' | 'fleetRateCounter'> {
  return { rateLimitRedis: { client: fleet.redis, keyPrefix }, fleetRateCounter: fleetRateCounter(fleet.redis, keyPrefix) }
}

export async function startHub (options: HubOptions = {}): Promise<Hub> {
  const { logger, ...input } = options
  const config = resolveConfig(input)
  const log = logger ?? createLogger(config.logLevel)
  mkdirSync(config.dataDir, { recursive: true, mode: 0o700 })

  // Every part opened so far, closed in reverse order of need: listeners stop accepting,
  // HTTP (and its WebSocket clients) closes, the broker ends every MQTT session (so the
  // TCP servers can finish closing), and the store closes last, after in-flight writes.
  let store: Store | null = null
  let broker: MetanodeBroker | null = null
  let state: StateService | null = null
  let policies: PolicyStore | null = null
  let zkVerifier: LazyVerifier | null = null
  let fleet: FleetFacts | null = null
  let backends: BrokerBackends | null = null
  let presenceTracker: FleetPresence | null = null
  let app: FastifyInstance | null = null
  const servers: TcpServer[] = []
  const closeAll = async (): Promise<void> => {
    const serversClosed = servers.map(server => new Promise<void>(resolve => server.close(() => resolve())))
    const steps: Array<[string, (() => Promise<unknown>) | null]> = [
      ['http', app ? () => app!.close() : null],
      // Before the broker: the deltas it is still sending need a live broker to finish.
      ['state', state ? () => state!.close() : null],
      ['presence', presenceTracker ? async () => presenceTracker!.close() : null],
      ['broker', broker ? () => broker!.close() : null],
      ['broker persistence', backends ? () => backends!.close() : null],
      ['policies', policies ? () => policies!.close() : null],
      ['zk verifier', zkVerifier ? () => zkVerifier!.close() : null],
      ['listeners', () => Promise.all(serversClosed)],
      ['cluster', fleet ? () => fleet!.close() : null],
      ['store', store ? () => store!.close() : null],
    ]
    for (const [part, close] of steps) {
      await close?.().catch(err => log.error({ err, part }, 'error while closing'))
    }
  }

  try {
    store = config.databaseUrl
      ? await openStore({ url: config.databaseUrl, onIdleError: err => log.warn({ err }, 'a PostgreSQL connection failed while idle; the pool replaces it') })
      : await openStore({ file: join(config.dataDir, 'metanode.db') })
    log.info({ database: config.databaseUrl ? redactUrl(config.databaseUrl) : join(config.dataDir, 'metanode.db') }, 'records database open')
    const principals = store.principals
    const nodeKey = loadOrCreateNodeKey(config.dataDir)
    const adminToken = await loadOrCreateAdminToken({ dataDir: config.dataDir, token: config.adminToken, log: log.child({ component: 'admin-token' }) })

    if (config.allowAnonymous) {
      log.warn('!!! ANONYMOUS MODE: clients without credentials are admitted (outside mn/v1/ only). Development use only: never run a production hub with --allow-anonymous. !!!')
    }

    const zkTree = await TreeStore.open(store.sql)
    const verifier = zkVerifier = lazyVerifier(circuitArtifact('verification_key.json'), { queueMax: config.zk.verifyQueueMax })
    const zkLog = log.child({ component: 'zklock' })
    // Accepted claims are bridged through the broker, which is made below.
    const bridgeClaim = createClaimBridge({
      hubId: nodeKey.id,
      sign: config.signAcks ? nodeKey.sign : undefined,
      publish: (topic, payload) => broker ? broker.publish(topic, payload) : Promise.resolve(),
    })
    const claims = createClaimService({
      db: store.sql,
      tree: zkTree,
      verifier,
      epochs: { lengthMs: config.zk.epochLengthMs, reward: config.zk.reward },
      onAccepted: claim => bridgeClaim(claim).catch(err => zkLog.error({ err, nullifier: claim.nullifier }, 'an accepted claim could not be bridged')),
    })
    const proofs = createProofChecker({ tree: zkTree, verifier })
    const audit = new AuditLog(store.sql)
    policies = await PolicyStore.open(store.sql, {
      audit,
      // In a cluster another process may change the rules in the shared database: each
      // process reads the rules' change counter (one cheap query) every second.
      refreshIntervalMs: config.cluster ? 1_000 : 0,
      onRefreshError: err => log.error({ err }, 'the stored policy rules do not validate; the active set is kept'),
    })

    // Deltas go out through the broker, which is made next with the state handlers.
    const stateService = state = createStateService({
      db: store.sql,
      log: log.child({ component: 'state' }),
      limits: config.state,
      hubId: nodeKey.id,
      sign: config.signAcks ? nodeKey.sign : undefined,
      publishDown: (deviceId, envelope) => broker ? broker.publish(downTopic(deviceId), Buffer.from(envelope)) : Promise.resolve(),
    })
    const stateMqtt = createStateMqtt({ state: stateService, log: log.child({ component: 'state' }) })

    if (config.cluster) fleet = await connectFleet(config.cluster, log.child({ component: 'cluster' }))
    backends = await brokerBackends(config, fleet, log.child({ component: 'broker-persistence' }))
    // Ids are remembered fleet-wide for twice the skew window, as the local guards do (§4).
    const idsTtlMs = 2 * config.protocol.skewMs

    const registry = new Registry()
    collectDefaultMetrics({ register: registry, prefix: 'metanode_' })
    new Gauge({
      name: 'metanode_zk_verify_pending',
      help: 'ZK proofs queued for or being verified by the worker pool (bounded by zk.verifyQueueMax plus the workers)',
      registers: [registry],
      collect () { this.set(verifier.pending) },
    })
    const mqttBroker = broker = await createBroker({
      config,
      hubId: nodeKey.id,
      lookupPrincipal: id => principals.get(id),
      log: log.child({ component: 'broker' }),
      registry,
      signAck: config.signAcks ? nodeKey.sign : undefined,
      handlers: new Map<number, MessageHandler | FeatureHandler>([...stateMqtt.handlers, ...zkMqttHandlers(claims, proofs), [MessageType.SecurityAlert, securityAlertHandler(audit)]]),
      onPrincipalReady: stateMqtt.onPrincipalReady,
      persistence: backends.persistence,
      mq: backends.mq,
      fleet: fleet ? { connectNonces: fleet.ids('connect', idsTtlMs), envelopeIds: fleet.ids('up', idsTtlMs), deliveries: fleet.deliveries } : undefined,
    })
    // A revocation on any process closes the session wherever it lives.
    fleet?.onRevocation(id => mqttBroker.revoke(id))
    const presence = presenceTracker = fleet && config.cluster
      ? trackPresence({ aedes: mqttBroker.aedes, redis: fleet.redis, keyPrefix: config.cluster.keyPrefix, log: log.child({ component: 'presence' }) })
      : null
    const fleetFacts = fleet
    mqttBroker.aedes.on('subscribe', (subscriptions, client) => stateMqtt.onSubscribed(client.id, subscriptions))

    let ready = false
    const http = app = createHttpServer({
      store,
      adminToken,
      log,
      isReady: () => ready,
      onRevoke: async id => {
        mqttBroker.revoke(id)
        await fleetFacts?.announceRevocation(id)
      },
      fleetNonces: fleetFacts?.ids('http', idsTtlMs),
      ...(fleetFacts && config.cluster ? fleetLimits(fleetFacts, config.cluster.keyPrefix) : {}),
      principalKeys: mqttBroker.directory,
      ...config.http,
      policies,
      audit,
      zkTree,
      zkClaims: claims,
      claimsPerMinute: config.zk.claimsPerMinute,
      skewMs: config.protocol.skewMs,
      listenBridge: (filter, handler) => mqttBroker.listen(filter, handler),
      sendToDevice: createDownSender({ principals, nodeKey, broker: mqttBroker, signAll: config.signAcks, isOnline: presence ? id => presence.isOnline(id) : undefined }),
      state: stateService,
    })
    http.get('/metrics', async (_req, reply) => {
      reply.type(registry.contentType)
      return registry.metrics()
    })
    serveMqttOverWebSocket(http, mqttBroker, config)

    const mqttServer = createTcpServer(socket => acceptSocket(socket, mqttBroker))
    servers.push(mqttServer)
    const mqttPort = await listen(mqttServer, config.mqttPort, config.host)

    let tlsPort: number | null = null
    if (config.tls) {
      const tlsServer = createTlsServer({ cert: readFileSync(config.tls.certFile), key: readFileSync(config.tls.keyFile) }, socket => acceptSocket(socket, mqttBroker))
      servers.push(tlsServer)
      tlsPort = await listen(tlsServer, config.tls.port, config.host)
    }

    await http.listen({ port: config.httpPort, host: config.host })
    const httpPort = (http.server.address() as AddressInfo).port
    ready = true
    log.info({ host: config.host, mqttPort, httpPort, tlsPort, mqttWs: config.mqttWsPath, nodeId: nodeKey.id, dataDir: config.dataDir }, 'hub accepting connections')

    let closing: Promise<void> | null = null
    return {
      config,
      nodeId: nodeKey.id,
      mqttPort,
      httpPort,
      tlsPort,
      adminToken,
      store,
      broker: mqttBroker,
      state: stateService,
      audit,
      policies,
      registry,
      close () {
        closing ??= (async () => {
          ready = false
          await closeAll()
          log.info('hub closed')
        })()
        return closing
      },
    }
  } catch (err) {
    await closeAll()
    throw err
  }
}

function acceptSocket (socket: Socket, broker: MetanodeBroker): void {
  // Nagle's algorithm halves saturated throughput for small MQTT packets (baselines.md).
  socket.setNoDelay(true)
  broker.handle(socket)
}

/** MQTT over WebSocket on the HTTP port, so browsers and mobile apps can connect. */
function serveMqttOverWebSocket (app: FastifyInstance, broker: MetanodeBroker, config: Readonly<HubConfig>): void {
  const wss = new WebSocketServer({ noServer: true, maxPayload: config.clients.packetBytesMax })
  app.server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    const path = (req.url ?? '').split('?')[0]
    if (path !== config.mqttWsPath) {
      socket.destroy()
      return
    }
    ;(socket as Socket).setNoDelay?.(true)
    wss.handleUpgrade(req, socket, head, ws => broker.handle(createWebSocketStream(ws), req))
  })
  // preClose: upgraded sockets would otherwise hold the HTTP server's close open.
  app.addHook('preClose', async () => {
    for (const ws of wss.clients) ws.terminate()
    await new Promise<void>(resolve => wss.close(() => resolve()))
  })
}

function listen (server: TcpServer, port: number, host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject)
    server.listen(port, host, () => {
      server.off('error', reject)
      resolve((server.address() as AddressInfo).port)
    })
  })
}


/** Security alerts from devices go into the audit log as well as onto their bridge topic. */
function securityAlertHandler (audit: AuditLog): MessageHandler {
  return async ({ principal, envelope }) => {
    const body = envelope.body as { kind: string, detail: unknown }
    const detail = typeof body.detail === 'string' ? body.detail.slice(0, 1024) : '(structured; see the bridge record)'
    await audit.append({ actor: `principal:${principal.id}`, action: 'security.alert', target: principal.id, detail: { kind: String(body.kind).slice(0, 128), detail } })
  }
}
