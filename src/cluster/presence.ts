/**
 * Which principals are connected anywhere in the fleet, for the HTTP API's `online`
 * (cluster mode). Each process writes `{prefix}online:{id}` = its own token when a
 * principal's session is ready, keeps the keys of its sessions alive, and deletes a key on
 * disconnect only if it is still its own (the session may have moved to another process
 * meanwhile). A process that crashes leaves its keys to expire: `online` may say true for a
 * session of a dead process for up to the key's lifetime.
 */
import { randomUUID } from 'node:crypto'
import type { Aedes, Client } from 'aedes'
import type { Redis } from 'ioredis'
import type { Logger } from 'pino'
import { isPrincipalId } from '../protocol/index.js'

/** Lifetime of a presence key; refreshed at a third of it. */
export const PRESENCE_TTL_MS = 60_000

const DELETE_IF_OURS = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"

export interface FleetPresence {
  /** True when the principal has a session on this process or, as far as Redis knows, on another. */
  isOnline (id: string): Promise<boolean>
  close (): void
}

export function trackPresence (options: { aedes: Aedes, redis: Redis, keyPrefix: string, log: Logger }): FleetPresence {
  const { aedes, redis, log } = options
  const token = randomUUID()
  const key = (id: string): string => `${options.keyPrefix}online:${id}`
  const local = (): Record<string, Client | undefined> => (aedes as unknown as { clients: Record<string, Client | undefined> }).clients
  const warn = (err: unknown): void => log.warn({ err: (err as Error).message }, 'presence could not be written to redis')

  aedes.on('clientReady', client => {
    if (isPrincipalId(client.id)) redis.set(key(client.id), token, 'PX', PRESENCE_TTL_MS).catch(warn)
  })
  aedes.on('clientDisconnect', client => {
    if (isPrincipalId(client.id)) redis.eval(DELETE_IF_OURS, 1, key(client.id), token).catch(warn)
  })
  const refresh = setInterval(() => {
    const ids = Object.keys(local()).filter(isPrincipalId)
    if (ids.length === 0) return
    const pipeline = redis.pipeline()
    for (const id of ids) pipeline.pexpire(key(id), PRESENCE_TTL_MS)
    pipeline.exec().catch(warn)
  }, PRESENCE_TTL_MS / 3)
  refresh.unref()

  return {
    async isOnline (id) {
      if (local()[id] !== undefined) return true
      try {
        return await redis.exists(key(id)) === 1
      } catch {
        return false
      }
    },
    close () {
      clearInterval(refresh)
    },
  }
}
