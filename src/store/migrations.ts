/**
 * The schema, as an append-only list of migrations. The database records how many it has
 * applied in `PRAGMA user_version`; opening applies the rest, each in its own transaction,
 * so a crash mid-migration leaves the previous version intact. Never edit a migration that
 * has shipped: add the next one, here and, with the same version, in postgres-migrations.ts.
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
  {
    version: 2,
    // Device state documents (desired / reported, like a device shadow). JSON text columns;
    // `meta` holds the per-field timestamps. `version` increments on every change and is the
    // optimistic-concurrency token of PATCH.
    sql: `
      CREATE TABLE device_states (
        device_id TEXT PRIMARY KEY REFERENCES principals (id),
        version INTEGER NOT NULL CHECK (version >= 0),
        desired TEXT NOT NULL,
        reported TEXT NOT NULL,
        meta TEXT NOT NULL,
        updated_ms INTEGER NOT NULL
      ) STRICT, WITHOUT ROWID;
    `,
  },
  {
    version: 3,
    // The audit log: append-only and hash-chained. Each entry's hash covers its fields and the
    // hash before it, so editing or removing a row breaks the chain from there on. The
    // triggers stop accidental edits through this hub; the chain catches deliberate ones.
    sql: `
      CREATE TABLE audit_log (
        seq INTEGER PRIMARY KEY,
        ts_ms INTEGER NOT NULL,
        actor TEXT NOT NULL,
        action TEXT NOT NULL,
        target TEXT,
        source TEXT,
        detail TEXT NOT NULL,
        prev_hash TEXT NOT NULL CHECK (length(prev_hash) = 64),
        hash TEXT NOT NULL UNIQUE CHECK (length(hash) = 64)
      ) STRICT;
      CREATE INDEX audit_log_action ON audit_log (action, seq);
      CREATE INDEX audit_log_actor ON audit_log (actor, seq);
      CREATE INDEX audit_log_target ON audit_log (target, seq);
      CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
        BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
      CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
        BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
    `,
  },
  {
    version: 4,
    // Policy rules of the HTTP gateway, evaluated in ascending position; the first match
    // decides. `rule` is the validated JSON of the rule (match and action).
    sql: `
      CREATE TABLE policy_rules (
        id TEXT PRIMARY KEY,
        position INTEGER NOT NULL UNIQUE,
        rule TEXT NOT NULL,
        created_ms INTEGER NOT NULL,
        updated_ms INTEGER NOT NULL
      ) STRICT, WITHOUT ROWID;
    `,
  },
  {
    version: 5,
    // Provisioning tokens: an admin creates one (role, max uses, expiry); devices enrol
    // themselves with it. Only the token's SHA-256 is kept, so the table leaks no token.
    sql: `
      CREATE TABLE provisioning_tokens (
        id TEXT PRIMARY KEY,
        token_hash BLOB NOT NULL UNIQUE CHECK (length(token_hash) = 32),
        role TEXT NOT NULL CHECK (role IN ('device', 'service', 'node')),
        name TEXT,
        uses_max INTEGER NOT NULL CHECK (uses_max >= 1),
        uses INTEGER NOT NULL DEFAULT 0 CHECK (uses >= 0 AND uses <= uses_max),
        expires_ms INTEGER NOT NULL,
        created_ms INTEGER NOT NULL,
        revoked_ms INTEGER
      ) STRICT, WITHOUT ROWID;
      ALTER TABLE principals ADD COLUMN provisioned_by TEXT REFERENCES provisioning_tokens (id);
    `,
  },
  {
    version: 6,
    // The ZK claim lock's identity tree (docs/zklock.md §4, src/zklock/tree-store.ts): one
    // leaf (commitment, a decimal field element) per device, in append order; every root the
    // tree has had, with its leaf count (the accepted ones are the most recent); and the
    // frontier after the last append, so that opening does not rehash every leaf.
    sql: `
      CREATE TABLE zk_leaves (
        idx INTEGER PRIMARY KEY CHECK (idx >= 0),
        commitment TEXT NOT NULL UNIQUE,
        device_id TEXT UNIQUE REFERENCES principals (id),
        added_ms INTEGER NOT NULL
      ) STRICT;
      CREATE TABLE zk_roots (
        root TEXT PRIMARY KEY,
        leaf_count INTEGER NOT NULL UNIQUE CHECK (leaf_count >= 0),
        created_ms INTEGER NOT NULL
      ) STRICT, WITHOUT ROWID;
      CREATE TABLE zk_frontier (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        leaf_count INTEGER NOT NULL,
        root TEXT NOT NULL,
        frontier TEXT NOT NULL
      ) STRICT;
    `,
  },
  {
    version: 7,
    // ZK claims (docs/zklock.md, src/zklock/claims.ts): one row per accepted claim, keyed by
    // its nullifier (canonical decimal), so that the primary key refuses a second claim of an
    // identity in an epoch even when two race; and the balance credited to each recipient
    // (an ed25519 public key, 64 lowercase hex digits).
    sql: `
      CREATE TABLE zk_claims (
        nullifier TEXT PRIMARY KEY,
        epoch INTEGER NOT NULL CHECK (epoch >= 0),
        recipient TEXT NOT NULL CHECK (length(recipient) = 64),
        amount INTEGER NOT NULL CHECK (amount >= 0),
        root TEXT NOT NULL,
        claimed_ms INTEGER NOT NULL
      ) STRICT, WITHOUT ROWID;
      CREATE INDEX zk_claims_recipient ON zk_claims (recipient);
      CREATE TABLE zk_balances (
        recipient TEXT PRIMARY KEY CHECK (length(recipient) = 64),
        amount INTEGER NOT NULL CHECK (amount >= 0)
      ) STRICT, WITHOUT ROWID;
    `,
  },
  {
    version: 8,
    // A counter per kind of record that processes sharing the database cache (policy rules,
    // the ZK tree), bumped in the transaction of every change, so that each process sees
    // another's change with one cheap read on either engine (src/store/change-counters.ts).
    sql: `
      CREATE TABLE change_counters (
        name TEXT PRIMARY KEY,
        n INTEGER NOT NULL
      ) STRICT, WITHOUT ROWID;
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
