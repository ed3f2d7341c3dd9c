/**
 * What the broker's hooks share: per-client state, the principal directory, limits,
 * counters and the uplink pipeline. Built once by createBroker.
 */
import type { Client } from 'aedes'
import type { Logger } from 'pino'
import type { ReplayGuard } from '../src/protocol/index.js'
import type { FleetIds } from '../src/cluster/fleet-ids.js'
import type { HubConfig } from '../src/config.js'
import type { ClientIdentity } from './acl.js'
import type { KnownPrincipal, PrincipalDirectory } from '../src/auth/principal-keys.js'
import type { TokenBucket, BadPacketCounter } from './client-limits.js'
import type { InOrder } from './in-order.js'
import type { RejectionLog } from './rejections.js'
import type { BrokerMetrics } from './metrics.js'
import type { UpPipeline } from './up-pipeline.js'
import type { DeliveryReceipts } from './delivery-receipts.js'

export interface ClientState {
  /** The client id exactly as sent: Aedes replaces an empty one before `authenticate`. */
  sentClientId: string
  cleanSession: boolean
  identity: ClientIdentity | null
  principal: KnownPrincipal | null
  publishes: TokenBucket
  badPackets: BadPacketCounter
  order: InOrder
}

export interface BrokerContext {
  config: Readonly<HubConfig>
  log: Logger
  directory: PrincipalDirectory
  connectNonces: ReplayGuard
  /** Cluster mode: the fleet's record of CONNECT nonces (key: principal id, id: nonce hex). */
  fleetNonces?: FleetIds
  clients: WeakMap<Client, ClientState>
  /** Publish packets that were acknowledged but must not be routed (§3 refusals, uplinks). */
  dropped: WeakSet<object>
  rejections: RejectionLog
  metrics: BrokerMetrics
  pipeline: UpPipeline
  receipts: DeliveryReceipts
  /** Counts a bad packet; past the threshold the client is disconnected (§7). */
  countBad (client: Client, state: ClientState, reason: string): void
}
