/**
 * The hub's one typed configuration. Defaults serve a developer's laptop; a JSON config
 * file and CLI flags are merged over them, validated, and frozen. Components receive
 * their slice, never `process.env`.
 */
import { ConfigError } from './errors.js'

export interface ProtocolLimits {
  /** Allowed |sender clock − hub clock| for CONNECT passwords and envelopes, in ms. */
  skewMs: number
  /** Largest MQTT payload the hub decodes, in bytes (also caps inflated bodies). */
  payloadBytesMax: number
  /** Replay guard: remembered (sender, id) pairs per principal before the oldest go. */
  replayIdsPerPrincipalMax: number
  /** Replay guard: remembered pairs in total, across all principals. */
  replayIdsTotalMax: number
}

export interface ClientLimits {
  /** Sustained publishes per second allowed per client (token bucket refill rate). */
  publishesPerSecond: number
  /** Burst of publishes allowed above the sustained rate. */
  publishBurst: number
  /** Rejected (undecodable, unauthorised, rate-limited) packets tolerated per window before disconnect. */
  badPacketsMax: number
  /** Window over which bad packets are counted, in ms. */
  badPacketsWindowMs: number
  /** Subscriptions per client. */
  subscriptionsMax: number
  /** Largest MQTT packet read at all, in bytes; a larger one ends the connection before it is buffered. */
  packetBytesMax: number
}

export interface StateLimits {
  /**
   * Largest state document, in bytes: desired plus reported as compact UTF-8 JSON (the
   * per-field timestamps are not counted). At most payloadBytesMax / 8, so that the whole
   * document, its delta and its timestamps, as CBOR, always fit in one Ack; when not set,
   * 8 KiB or that bound, whichever is smaller.
   */
  documentBytesMax: number
  /** Deepest nesting of objects and arrays in desired or in reported, in levels (a flat map is 1). */
  depthMax: number
}

export interface HttpGuards {
  /** Requests per minute per principal, and per address for anonymous callers (the admin is not limited). */
  rateLimitPerMinute: number
  /** Self-enrolments with a provisioning token per address per minute. */
  enrollPerMinute: number
  /** Browser origins allowed by CORS; empty: none. */
  corsOrigins: string[]
}

export interface ZkSettings {
  /** Length of a claim epoch, in ms: one claim per device per epoch. */
  epochLengthMs: number
  /** What one accepted claim credits to its recipient. */
  reward: number
  /** Proofs allowed to wait for a verifier worker; past it a claim gets 503 with Retry-After. */
  verifyQueueMax: number
  /** Anonymous claims per address per minute over HTTP. */
  claimsPerMinute: number
}

export interface TlsConfig {
  /** PEM certificate chain file. */
  certFile: string
  /** PEM private key file. */
  keyFile: string
  /** Port for MQTT over TLS. */
  port: number
}

export interface ClusterConfig {
  /** The Redis every process of the fleet shares: `redis://[user:password@]host:port[/db]` or `rediss://`. */
  redisUrl: string
  /** Prefix of every key and channel the hub uses in Redis, so that several fleets can share one server. */
  keyPrefix: string
}

export interface HubConfig {
  /** Interface the listeners bind to. */
  host: string
  /** MQTT over TCP. 0 picks a free port (tests). */
  mqttPort: number
  /** HTTP API; MQTT over WebSocket is served on the same port at `mqttWsPath`. 0 picks a free port. */
  httpPort: number
  /** Path of the MQTT-over-WebSocket endpoint on the HTTP port. */
  mqttWsPath: string
  /** MQTT over TLS, when a certificate and key are given. */
  tls: TlsConfig | null
  /** SQLite file, admin token and node key live here. */
  dataDir: string
  /** Development mode of protocol-v1 §2: admits anonymous clients outside mn/v1/. */
  allowAnonymous: boolean
  /** Admin token for the HTTP API; generated and kept in dataDir when null. */
  adminToken: string | null
  /** Sign Acks with the hub node's key (COSE_Sign1). */
  signAcks: boolean
  /**
   * Where a single hub keeps the broker's sessions, subscriptions, retained messages and
   * QoS 1/2 queues: `durable` in SQLite under dataDir (survives a crash), `memory` (lost on
   * exit; for benchmarks and throwaway hubs). Ignored in cluster mode, which keeps them in Redis.
   */
  brokerPersistence: 'durable' | 'memory'
  /** Several hub processes serving one fleet through one Redis (docs/operations.md); null: one process. */
  cluster: ClusterConfig | null
  /**
   * Where the records live (principals, state documents, policies, audit log, ZK tree and
   * claims): null, the SQLite file metanode.db in dataDir; a postgres:// URL, a PostgreSQL
   * database, which a fleet's processes on several hosts share. The password may also come
   * from PGPASSWORD. Never logged with its password.
   */
  databaseUrl: string | null
  protocol: ProtocolLimits
  clients: ClientLimits
  /** Device state documents (docs/protocol.md §14). */
  state: StateLimits
  /** The HTTP gateway's guards. */
  http: HttpGuards
  /** ZKLock anonymous claims (docs/zklock.md). */
  zk: ZkSettings
  /** pino level. */
  logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent'
  /** Interval for rate-limited rejection log lines, in ms. */
  rejectionLogIntervalMs: number
}

export const DEFAULT_CONFIG: HubConfig = Object.freeze({
  host: '0.0.0.0',
  mqttPort: 1883,
  httpPort: 8080,
  mqttWsPath: '/mqtt',
  tls: null,
  dataDir: './data',
  allowAnonymous: false,
  adminToken: null,
  signAcks: false,
  brokerPersistence: 'durable',
  cluster: null,
  databaseUrl: null,
  protocol: Object.freeze({
    skewMs: 120_000,
    payloadBytesMax: 64 * 1024,
    replayIdsPerPrincipalMax: 50_000,
    replayIdsTotalMax: 1_000_000,
  }),
  clients: Object.freeze({
    publishesPerSecond: 1_000,
    publishBurst: 2_000,
    badPacketsMax: 50,
    badPacketsWindowMs: 60_000,
    subscriptionsMax: 100,
    packetBytesMax: 256 * 1024,
  }),
  state: Object.freeze({
    documentBytesMax: 8 * 1024,
    depthMax: 8,
  }),
  http: Object.freeze({
    rateLimitPerMinute: 1_200,
    enrollPerMinute: 30,
    corsOrigins: Object.freeze([]) as unknown as string[],
  }),
  zk: Object.freeze({
    epochLengthMs: 24 * 3600 * 1000,
    reward: 1,
    verifyQueueMax: 256,
    claimsPerMinute: 30,
  }),
  logLevel: 'info',
  rejectionLogIntervalMs: 10_000,
}) as HubConfig

export type HubConfigInput = Partial<Omit<HubConfig, 'protocol' | 'clients' | 'state' | 'http' | 'zk' | 'tls' | 'cluster'>> & {
  cluster?: (Partial<ClusterConfig> & { redisUrl: string }) | null
  http?: Partial<HttpGuards>
  zk?: Partial<ZkSettings>
  protocol?: Partial<ProtocolLimits>
  clients?: Partial<ClientLimits>
  state?: Partial<StateLimits>
  tls?: TlsConfig | null
}

/**
 * A body may nest 24 levels (protocol-v1 §4), and the deepest place a section goes is the
 * timestamps of desired in a StatusSync's Ack: body, result, meta, meta.desired, then the
 * section's own levels.
 */
const STATE_DEPTH_MAX = 21

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']

/** Merges input over the defaults, validates every field and returns a frozen config. */
export function resolveConfig (input: HubConfigInput = {}): Readonly<HubConfig> {
  const known = new Set([...Object.keys(DEFAULT_CONFIG), 'protocol', 'clients', 'state', 'http', 'zk', 'tls', 'cluster'])
  for (const key of Object.keys(input)) {
    if (!known.has(key)) throw new ConfigError(`unknown config key "${key}"`)
  }
  const config: HubConfig = {
    ...DEFAULT_CONFIG,
    ...stripUndefined(input),
    protocol: { ...DEFAULT_CONFIG.protocol, ...stripUndefined(input.protocol ?? {}) },
    clients: { ...DEFAULT_CONFIG.clients, ...stripUndefined(input.clients ?? {}) },
    state: { ...DEFAULT_CONFIG.state, ...stripUndefined(input.state ?? {}) },
    http: { ...DEFAULT_CONFIG.http, ...stripUndefined(input.http ?? {}) },
    zk: { ...DEFAULT_CONFIG.zk, ...stripUndefined(input.zk ?? {}) },
    tls: input.tls ?? null,
    cluster: input.cluster ? { keyPrefix: 'mn:', ...stripUndefined(input.cluster), redisUrl: input.cluster.redisUrl } : null,
  }
  requireString('host', config.host)
  requirePort('mqttPort', config.mqttPort)
  requirePort('httpPort', config.httpPort)
  requireString('dataDir', config.dataDir)
  if (!config.mqttWsPath.startsWith('/')) throw new ConfigError('mqttWsPath must start with "/"')
  if (typeof config.allowAnonymous !== 'boolean') throw new ConfigError('allowAnonymous must be a boolean')
  if (typeof config.signAcks !== 'boolean') throw new ConfigError('signAcks must be a boolean')
  if (config.adminToken !== null && (typeof config.adminToken !== 'string' || config.adminToken.length < 16)) {
    throw new ConfigError('adminToken must be a string of at least 16 characters')
  }
  if (input.clients?.packetBytesMax === undefined) {
    // Unless set, the packet cap leaves room above the payload limit for topic and headers.
    config.clients.packetBytesMax = Math.max(DEFAULT_CONFIG.clients.packetBytesMax, config.protocol.payloadBytesMax + 64 * 1024)
  }
  if (config.clients.packetBytesMax <= config.protocol.payloadBytesMax) {
    throw new ConfigError('clients.packetBytesMax must be larger than protocol.payloadBytesMax, so that an oversize payload is refused as too_large rather than by disconnecting')
  }
  if (config.brokerPersistence !== 'durable' && config.brokerPersistence !== 'memory') {
    throw new ConfigError(`brokerPersistence must be "durable" or "memory", got ${String(config.brokerPersistence)}`)
  }
  if (config.cluster) {
    requireKnownKeys('cluster', config.cluster, { redisUrl: 0, keyPrefix: 0 })
    if (typeof config.cluster.redisUrl !== 'string' || !/^rediss?:\/\/[^\s]+$/.test(config.cluster.redisUrl)) {
      throw new ConfigError('cluster.redisUrl must be a redis:// or rediss:// URL')
    }
    if (typeof config.cluster.keyPrefix !== 'string' || !/^[\w:.-]{1,32}$/.test(config.cluster.keyPrefix)) {
      throw new ConfigError('cluster.keyPrefix must be 1 to 32 letters, digits, ":", ".", "_" or "-"')
    }
  }
  if (config.databaseUrl !== null && (typeof config.databaseUrl !== 'string' || !/^postgres(ql)?:\/\/[^\s]+$/.test(config.databaseUrl))) {
    throw new ConfigError('databaseUrl must be a postgres:// or postgresql:// URL, or null for the SQLite file in dataDir')
  }
  if (config.tls) {
    requireString('tls.certFile', config.tls.certFile)
    requireString('tls.keyFile', config.tls.keyFile)
    requirePort('tls.port', config.tls.port)
  }
  for (const [key, value] of Object.entries(config.protocol)) requirePositiveInt(`protocol.${key}`, value)
  for (const [key, value] of Object.entries(config.clients)) requirePositiveInt(`clients.${key}`, value)
  requireKnownKeys('zk', config.zk, DEFAULT_CONFIG.zk)
  for (const [key, value] of Object.entries(config.zk)) requirePositiveInt(`zk.${key}`, value)
  requireKnownKeys('http', config.http, DEFAULT_CONFIG.http)
  requirePositiveInt('http.rateLimitPerMinute', config.http.rateLimitPerMinute)
  requirePositiveInt('http.enrollPerMinute', config.http.enrollPerMinute)
  if (!Array.isArray(config.http.corsOrigins) || !config.http.corsOrigins.every(o => typeof o === 'string' && /^https?:\/\/[^/]+$/.test(o))) {
    throw new ConfigError('http.corsOrigins must be a list of origins such as "https://app.example.com"')
  }
  config.http.corsOrigins = [...config.http.corsOrigins]
  requireKnownKeys('state', config.state, DEFAULT_CONFIG.state)
  if (input.state?.documentBytesMax === undefined) {
    // The default cap shrinks with a smaller payload limit; a cap given explicitly is checked below.
    config.state.documentBytesMax = Math.min(DEFAULT_CONFIG.state.documentBytesMax, Math.floor(config.protocol.payloadBytesMax / 8))
  }
  for (const [key, value] of Object.entries(config.state)) requirePositiveInt(`state.${key}`, value)
  // A whole document with its delta and timestamps, as CBOR, is at most about 6.5 times its
  // JSON size (a float is 9 CBOR bytes where JSON may need 4), and it must fit in one Ack.
  if (config.state.documentBytesMax > Math.floor(config.protocol.payloadBytesMax / 8)) {
    throw new ConfigError(`state.documentBytesMax must be at most protocol.payloadBytesMax / 8 (${Math.floor(config.protocol.payloadBytesMax / 8)}), got ${config.state.documentBytesMax}`)
  }
  if (config.state.depthMax > STATE_DEPTH_MAX) {
    throw new ConfigError(`state.depthMax must be at most ${STATE_DEPTH_MAX} (so that a whole document fits in an Ack body's 24 levels), got ${config.state.depthMax}`)
  }
  requirePositiveInt('rejectionLogIntervalMs', config.rejectionLogIntervalMs)
  if (!LOG_LEVELS.includes(config.logLevel)) throw new ConfigError(`logLevel must be one of ${LOG_LEVELS.join(', ')}`)
  return deepFreeze(config)
}

function stripUndefined<T extends object> (value: T): Partial<T> {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as Partial<T>
}

function requireKnownKeys (name: string, value: object, defaults: object): void {
  for (const key of Object.keys(value)) {
    if (!Object.hasOwn(defaults, key)) throw new ConfigError(`unknown config key "${name}.${key}"`)
  }
}

function requireString (name: string, value: unknown): void {
  if (typeof value !== 'string' || value.length === 0) throw new ConfigError(`${name} must be a non-empty string`)
}

function requirePort (name: string, value: unknown): void {
  if (!Number.isInteger(value) || (value as number) < 0 || (value as number) > 65535) {
    throw new ConfigError(`${name} must be an integer port from 0 to 65535, got ${String(value)}`)
  }
}

function requirePositiveInt (name: string, value: unknown): void {
  if (!Number.isSafeInteger(value) || (value as number) <= 0) {
    throw new ConfigError(`${name} must be a positive integer, got ${String(value)}`)
  }
}

function deepFreeze<T> (value: T): T {
  if (value && typeof value === 'object') {
    for (const inner of Object.values(value)) deepFreeze(inner)
    Object.freeze(value)
  }
  return value
}
