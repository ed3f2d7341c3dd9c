/**
 * What the ZK repositories' tests need of the rest of the database: device principals to
 * own leaves, through the registry as the hub makes them.
 */
import { PrincipalStore } from '../../src/store/principals.js'
import type { SqlDatabase } from '../../src/store/sql.js'
import { newPublicKey } from '../store/helpers.js'

/** A new principal (a device unless told otherwise); its id. */
export async function addPrincipal (db: SqlDatabase, role: 'device' | 'service' = 'device'): Promise<string> {
  return (await new PrincipalStore(db).create({ publicKey: await newPublicKey(), role })).id
}

export async function revokePrincipal (db: SqlDatabase, id: string, nowMs = Date.now()): Promise<void> {
  await new PrincipalStore(db).revoke(id, nowMs)
}
