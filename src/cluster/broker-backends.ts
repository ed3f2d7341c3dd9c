/**
 * Where the broker keeps its state and how it routes messages, by mode:
 * - one process: the durable SQLite persistence under dataDir (or Aedes's in-memory one when
 *   asked), in-process routing;
 * - cluster: aedes-persistence-redis for sessions, subscriptions, retained messages and QoS
 *   queues, and mqemitter-redis for routing between the fleet's processes.
 */
import { join } from 'node:path'
import type { Logger } from 'pino'
import type { AedesOptions } from 'aedes'
import aedesPersistenceModule from 'aedes-persistence'
import aedesPersistenceRedis from 'aedes-persistence-redis'
import MQEmitterRedis from 'mqemitter-redis'
import type { HubConfig } from '../config.js'
import type { FleetFacts } from './fleet.js'
import { createSqlitePersistence } from '../../broker/persistence/sqlite-persistence.js'

// A CommonJS module whose types declare an ES default export: at runtime the default import
// is the factory itself (as Aedes imports it).
const aedesPersistence = aedesPersistenceModule as unknown as () => unknown

export interface BrokerBackends {
  persistence?: AedesOptions['persistence']
  mq?: AedesOptions['mq']
  /** Releases the persistence after the broker has closed (Aedes's close() does not). */
  close (): Promise<void>
}

/** The broker's state file in the data directory (beside the hub's own metanode.db). */
export const BROKER_DB_FILE = 'broker.db'

export async function brokerBackends (config: Readonly<HubConfig>, fleet: FleetFacts | null, log: Logger): Promise<BrokerBackends> {
  if (fleet) {
    const persistence = tolerateClearedPackets(aedesPersistenceRedis({ conn: await fleet.connection() }) as AedesOptions['persistence'])
    const emitter = new MQEmitterRedis({ pubConn: await fleet.connection(), subConn: await fleet.connection() })
    // Its connection errors come out as 'error' on `state`, which kills the process when
    // nobody listens; ioredis reconnects by itself, so they are logged (the fleet's own
    // connections log them too).
    emitter.state.on('error', (err: Error) => log.warn({ err: err.message }, 'redis error in the message router'))
    const mq = emitter as unknown as AedesOptions['mq']
    return { persistence, mq, close: () => destroy(persistence) }
  }
  const persistence = tolerateClearedPackets(config.brokerPersistence === 'memory'
    ? aedesPersistence() as AedesOptions['persistence']
    : await createSqlitePersistence({ file: join(config.dataDir, BROKER_DB_FILE), log }) as unknown as AedesOptions['persistence'])
  return { persistence, close: () => destroy(persistence) }
}

/**
 * When a persistent session reconnects, Aedes sends its queue from a snapshot while new
 * messages also reach it live; a packet queued before the snapshot can go both ways, and
 * once the live copy is acknowledged its row is gone. The replay's `outgoingUpdate` then
 * fails with "no such packet", which Aedes treats as a client error and disconnects the
 * client mid-backlog. Sending the copy anyway is what QoS 1 allows (at least once), so that
 * failure is turned into success.
 */
function tolerateClearedPackets (persistence: AedesOptions['persistence']): AedesOptions['persistence'] {
  const p = persistence as unknown as { outgoingUpdate (client: unknown, packet: unknown): Promise<unknown> }
  const update = p.outgoingUpdate.bind(p)
  p.outgoingUpdate = (client, packet) => update(client, packet).catch((err: unknown) => {
    if ((err as Error | null)?.message === 'no such packet') return undefined
    throw err
  })
  return persistence
}

/** The promise form: the callback form of the persistence packages' wrappers never calls back under Aedes 1.x. */
async function destroy (persistence: AedesOptions['persistence']): Promise<void> {
  await (persistence as unknown as { destroy (): Promise<void> }).destroy()
}
