// The two Redis packages of cluster mode ship no types; these are the parts the hub uses.
declare module 'aedes-persistence-redis' {
  import type { Redis } from 'ioredis'
  export default function aedesPersistenceRedis (options: { conn?: Redis, maxSessionDelivery?: number }): unknown
}

declare module 'mqemitter-redis' {
  import type { Redis } from 'ioredis'
  export default class MQEmitterRedis {
    constructor (options: { pubConn?: Redis, subConn?: Redis, connectionString?: string })
    /** Where the emitter reports its connections' errors. */
    readonly state: import('node:events').EventEmitter
    close (cb?: () => void): void
  }
}
