/**
 * The hub's SQLite store: one database file and the tables' repositories over it.
 */
import { openDatabase, type Database } from './database.js'
import { PrincipalStore } from './principals.js'
import { ProvisioningStore } from './provisioning.js'

export { openDatabase, BUSY_TIMEOUT_MS } from './database.js'
export { migrate, userVersion, MIGRATIONS, SCHEMA_VERSION, type Migration } from './migrations.js'
export { parsePublicKey, principalIdFromPublicKey, PUBLIC_KEY_BYTES } from './public-key.js'
export {
  PrincipalStore, ROLES, NAME_CHARS_MAX, LIST_LIMIT_MAX,
  type Role, type Principal, type CreatePrincipalInput, type ListPrincipalsQuery, type RevokeResult,
} from './principals.js'
export { ProvisioningStore, type ProvisioningToken, type CreateTokenInput } from './provisioning.js'
export type { Database }

export interface StoreOptions {
  /** Path of the SQLite file; its directory is created (mode 0700) when missing. */
  file: string
}

export interface Store {
  readonly db: Database
  readonly principals: PrincipalStore
  readonly provisioning: ProvisioningStore
  /** Closes the database; safe to call more than once. */
  close (): Promise<void>
}

export function openStore (options: StoreOptions): Store {
  const db = openDatabase(options.file)
  let principals: PrincipalStore
  let provisioning: ProvisioningStore
  try {
    principals = new PrincipalStore(db)
    provisioning = new ProvisioningStore(db, principals)
  } catch (err) {
    db.close()
    throw err
  }
  let closed = false
  return {
    db,
    principals,
    provisioning,
    async close () {
      if (closed) return
      closed = true
      db.close()
    },
  }
}
