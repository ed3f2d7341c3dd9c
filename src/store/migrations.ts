/**
 * The schema, as an append-only list of migrations. The database records how many it has
 * applied in `PRAGMA user_version`; opening applies the rest, each in its own transaction,
 * so a crash mid-migration leaves the previous version intact. Never edit a migration that
 * has shipped: add the next one.
 */
import type { Database } from 'better-sqlite3'
import { StoreSchemaError } from '../errors.js'

export interface Migration {
  /** The user_version the database has once this migration is applied (1, 2, …). */
  version: number
  sql: string
}

export const MIGRATIONS: readonly Migration[] = Object.freeze([
  {
    version: 1,
    // Principals of protocol-v1 §1. The id is derived from the key, so both are unique;
    // the key is kept as its 32 raw bytes so that hex case can never create a duplicate.
    // WITHOUT ROWID clusters rows by id, which is the order of keyset pagination.
    sql: `
      CREATE TABLE principals (
        id TEXT PRIMARY KEY CHECK (length(id) = 32),
        public_key BLOB NOT NULL UNIQUE CHECK (length(public_key) = 32),
        role TEXT NOT NULL CHECK (role IN ('device', 'service', 'node')),
        name TEXT CHECK (name IS NULL OR length(name) BETWEEN 1 AND 128),
        created_ms INTEGER NOT NULL,
        revoked_ms INTEGER
      ) STRICT, WITHOUT ROWID;
      CREATE INDEX principals_role_id ON principals (role, id);
    `,
  },
])

export const SCHEMA_VERSION = MIGRATIONS.length

/** Applies the migrations the database lacks; returns the versions before and after. */
export function migrate (db: Database, migrations: readonly Migration[] = MIGRATIONS): { from: number, to: number } {
  const from = userVersion(db)
  if (from > migrations.length) {
    throw new StoreSchemaError(`database schema version ${from} is newer than this hub's (${migrations.length}); upgrade the hub`)
  }
  for (const migration of migrations.slice(from)) {
    // IMMEDIATE takes the write lock first, and the version is read again under it, so two
    // processes opening one fresh file cannot both apply the same migration.
    db.transaction(() => {
      if (userVersion(db) >= migration.version) return
      try {
        db.exec(migration.sql)
      } catch (err) {
        throw new StoreSchemaError(`migration ${migration.version} failed: ${(err as Error).message}`, { cause: err })
      }
      db.pragma(`user_version = ${migration.version}`)
    }).immediate()
  }
  return { from, to: userVersion(db) }
}

export function userVersion (db: Database): number {
  return db.pragma('user_version', { simple: true }) as number
}
