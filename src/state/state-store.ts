/**
 * State documents in the hub's database (table `device_states`, migration 2), on either
 * engine. Every change is one transaction that takes the document's lock, reads the
 * document, lets the caller check and compute the next one, and writes it: so changes to
 * one document are serialised, across requests and across processes sharing the database,
 * and a version check made inside `change` can never pass for two writers of the same
 * version.
 */
import type { Role } from '../store/index.js'
import type { SqlDatabase } from '../store/sql.js'
import type { JsonObject, StateMeta } from './documents.js'

/** A document as stored. Version 0 means none was ever written: the sections are empty. */
export interface StoredState {
  version: number
  desired: JsonObject
  reported: JsonObject
  meta: StateMeta
  /** Time of the last change, ms; null while the version is 0. */
  updatedMs: number | null
}

/** The principal a document belongs to, and the document. */
export interface OwnedState {
  role: Role
  revoked: boolean
  state: StoredState
}

/** The next document, as `change` computes it; the store sets its version and time. */
export interface StateChange {
  desired: JsonObject
  reported: JsonObject
  meta: StateMeta
  /** JSON of desired and reported, when the caller made it already (for the size check). */
  desiredJson?: string
  reportedJson?: string
}

interface Row {
  role: Role
  revoked_ms: number | null
  version: number | null
  desired: string | null
  reported: string | null
  meta: string | null
  updated_ms: number | null
}

// One read answers both questions: is there such a principal, and what is its document.
const READ = `
  SELECT p.role, p.revoked_ms, s.version, s.desired, s.reported, s.meta, s.updated_ms
  FROM principals p LEFT JOIN device_states s ON s.device_id = p.id
  WHERE p.id = ?`

// Writes the next version only over the version it was computed from. Under the document's
// lock that always holds; the condition is what keeps an update from being lost should any
// writer ever reach the row without the lock (PostgreSQL re-checks it on the newest row
// version once a concurrent writer's row lock is released).
const WRITE = `
  INSERT INTO device_states (device_id, version, desired, reported, meta, updated_ms) VALUES (?, ?, ?, ?, ?, ?)
  ON CONFLICT (device_id) DO UPDATE SET
    version = excluded.version, desired = excluded.desired, reported = excluded.reported,
    meta = excluded.meta, updated_ms = excluded.updated_ms
  WHERE device_states.version = ?`

export class StateStore {
  readonly #db: SqlDatabase

  constructor (db: SqlDatabase) {
    this.#db = db
  }

  /** The principal's document (the empty one at version 0 when none was written); undefined for an unknown id. */
  async read (id: string): Promise<OwnedState | undefined> {
    const row = await this.#db.get<Row>(READ, [id])
    return row === undefined ? undefined : toOwned(row)
  }

  /**
   * Reads the document and hands it to `change`, which throws to refuse, and writes what
   * it returns as the next version, at nowMs; all in one transaction holding the
   * document's lock. Returns what was read and what was written, or undefined when the id
   * is unknown (nothing is written then).
   */
  async update (id: string, nowMs: number, change: (current: OwnedState) => StateChange): Promise<{ before: OwnedState, after: StoredState } | undefined> {
    return await this.#db.transaction(async () => {
      // Taken before the read, so the read sees the last change of whoever held it before.
      await this.#db.lock(`state:${id}`)
      const current = await this.read(id)
      if (current === undefined) return undefined
      const next = change(current)
      const version = current.state.version + 1
      const desiredJson = next.desiredJson ?? JSON.stringify(next.desired)
      const reportedJson = next.reportedJson ?? JSON.stringify(next.reported)
      const { changes } = await this.#db.run(WRITE, [id, version, desiredJson, reportedJson, JSON.stringify(next.meta), nowMs, current.state.version])
      if (changes !== 1) throw new Error(`the state document of ${id} changed under a locked update (it was at version ${current.state.version})`)
      const after: StoredState = { version, desired: next.desired, reported: next.reported, meta: next.meta, updatedMs: nowMs }
      return { before: current, after }
    })
  }
}

function toOwned (row: Row): OwnedState {
  const state: StoredState = row.version === null
    ? { version: 0, desired: {}, reported: {}, meta: { desired: {}, reported: {} }, updatedMs: null }
    : {
        version: row.version,
        desired: JSON.parse(row.desired!) as JsonObject,
        reported: JSON.parse(row.reported!) as JsonObject,
        meta: JSON.parse(row.meta!) as StateMeta,
        updatedMs: row.updated_ms,
      }
  return { role: row.role, revoked: row.revoked_ms !== null, state }
}
