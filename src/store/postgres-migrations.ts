/**
 * The schema of migrations.ts, version for version, in PostgreSQL's types: BYTEA for BLOB,
 * BIGINT for INTEGER (ms timestamps pass 2^31), a trigger function for the audit log's
 * append-only rule. The applied version is kept in `metanode_schema`; migrations run under
 * a session advisory lock, so hub processes starting together apply each one once.
 */
import { StoreSchemaError } from '../errors.js'
import type { Migration } from './migrations.js'
import { MIGRATIONS } from './migrations.js'
import type { PostgresSql } from './postgres-sql.js'

export const POSTGRES_MIGRATIONS: readonly Migration[] = Object.freeze([
  {
    version: 1,
    sql: `
      CREATE TABLE principals (
        id TEXT PRIMARY KEY CHECK (length(id) = 32),
        public_key BYTEA NOT NULL UNIQUE CHECK (octet_length(public_key) = 32),
        role TEXT NOT NULL CHECK (role IN ('device', 'service', 'node')),
        name TEXT CHECK (name IS NULL OR char_length(name) BETWEEN 1 AND 128),
        created_ms BIGINT NOT NULL,
        revoked_ms BIGINT
      );
      CREATE INDEX principals_role_id ON principals (role, id);
    `,
  },
  {
    version: 2,
    sql: `
      CREATE TABLE device_states (
        device_id TEXT PRIMARY KEY REFERENCES principals (id),
        version BIGINT NOT NULL CHECK (version >= 0),
        desired TEXT NOT NULL,
        reported TEXT NOT NULL,
        meta TEXT NOT NULL,
        updated_ms BIGINT NOT NULL
      );
    `,
  },
  {
    version: 3,
    sql: `
      CREATE TABLE audit_log (
        seq BIGINT PRIMARY KEY,
        ts_ms BIGINT NOT NULL,
        actor TEXT NOT NULL,
        action TEXT NOT NULL,
        target TEXT,
        source TEXT,
        detail TEXT NOT NULL,
        prev_hash TEXT NOT NULL CHECK (length(prev_hash) = 64),
        hash TEXT NOT NULL UNIQUE CHECK (length(hash) = 64)
      );
      CREATE INDEX audit_log_action ON audit_log (action, seq);
      CREATE INDEX audit_log_actor ON audit_log (actor, seq);
      CREATE INDEX audit_log_target ON audit_log (target, seq);
      CREATE FUNCTION audit_log_append_only () RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN RAISE EXCEPTION 'the audit log is append-only'; END;
      $$;
      CREATE TRIGGER audit_log_no_update BEFORE UPDATE OR DELETE ON audit_log
        FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();
      CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
        FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only();
    `,
  },
  {
    version: 4,
    // Deferred: a reorder moves positions through each other within one transaction.
    sql: `
      CREATE TABLE policy_rules (
        id TEXT PRIMARY KEY,
        position BIGINT NOT NULL,
        rule TEXT NOT NULL,
        created_ms BIGINT NOT NULL,
        updated_ms BIGINT NOT NULL,
        CONSTRAINT policy_rules_position UNIQUE (position) DEFERRABLE INITIALLY DEFERRED
      );
    `,
  },
  {
    version: 5,
    sql: `
      CREATE TABLE provisioning_tokens (
        id TEXT PRIMARY KEY,
        token_hash BYTEA NOT NULL UNIQUE CHECK (octet_length(token_hash) = 32),
        role TEXT NOT NULL CHECK (role IN ('device', 'service', 'node')),
        name TEXT,
        uses_max BIGINT NOT NULL CHECK (uses_max >= 1),
        uses BIGINT NOT NULL DEFAULT 0 CHECK (uses >= 0 AND uses <= uses_max),
        expires_ms BIGINT NOT NULL,
        created_ms BIGINT NOT NULL,
        revoked_ms BIGINT
      );
      ALTER TABLE principals ADD COLUMN provisioned_by TEXT REFERENCES provisioning_tokens (id);
    `,
  },
  {
    version: 6,
    sql: `
      CREATE TABLE zk_leaves (
        idx BIGINT PRIMARY KEY CHECK (idx >= 0),
        commitment TEXT NOT NULL UNIQUE,
        device_id TEXT UNIQUE REFERENCES principals (id),
        added_ms BIGINT NOT NULL
      );
      CREATE TABLE zk_roots (
        root TEXT PRIMARY KEY,
        leaf_count BIGINT NOT NULL UNIQUE CHECK (leaf_count >= 0),
        created_ms BIGINT NOT NULL
      );
      CREATE TABLE zk_frontier (
        id BIGINT PRIMARY KEY CHECK (id = 1),
        leaf_count BIGINT NOT NULL,
        root TEXT NOT NULL,
        frontier TEXT NOT NULL
      );
    `,
  },
  {
    version: 7,
    sql: `
      CREATE TABLE zk_claims (
        nullifier TEXT PRIMARY KEY,
        epoch BIGINT NOT NULL CHECK (epoch >= 0),
        recipient TEXT NOT NULL CHECK (length(recipient) = 64),
        amount BIGINT NOT NULL CHECK (amount >= 0),
        root TEXT NOT NULL,
        claimed_ms BIGINT NOT NULL
      );
      CREATE INDEX zk_claims_recipient ON zk_claims (recipient);
      CREATE TABLE zk_balances (
        recipient TEXT PRIMARY KEY CHECK (length(recipient) = 64),
        amount BIGINT NOT NULL CHECK (amount >= 0)
      );
    `,
  },
  {
    version: 8,
    sql: `
      CREATE TABLE change_counters (
        name TEXT PRIMARY KEY,
        n BIGINT NOT NULL
      );
    `,
  },
])

// Both engines must be at the same version for the same hub release.
if (POSTGRES_MIGRATIONS.length !== MIGRATIONS.length) throw new Error('postgres-migrations.ts is behind migrations.ts')

/** Applies the migrations the database lacks; returns the versions before and after. */
export async function migratePostgres (db: PostgresSql, migrations: readonly Migration[] = POSTGRES_MIGRATIONS): Promise<{ from: number, to: number }> {
  return db.withConnection(async client => {
    // A session lock (held across the migrations' own transactions), on a key no
    // repository's transaction lock uses.
    await client.query("SELECT pg_advisory_lock(hashtext('metanode schema'))")
    try {
      await client.query('CREATE TABLE IF NOT EXISTS metanode_schema (id INTEGER PRIMARY KEY CHECK (id = 1), version INTEGER NOT NULL)')
      await client.query('INSERT INTO metanode_schema (id, version) VALUES (1, 0) ON CONFLICT (id) DO NOTHING')
      const version = async (): Promise<number> => (await client.query('SELECT version FROM metanode_schema WHERE id = 1')).rows[0].version as number
      const from = await version()
      if (from > migrations.length) {
        throw new StoreSchemaError(`database schema version ${from} is newer than this hub's (${migrations.length}); upgrade the hub`)
      }
      for (const migration of migrations.slice(from)) {
        await client.query('BEGIN')
        try {
          await client.query(migration.sql)
          await client.query('UPDATE metanode_schema SET version = $1 WHERE id = 1', [migration.version])
          await client.query('COMMIT')
        } catch (err) {
          await client.query('ROLLBACK')
          throw new StoreSchemaError(`migration ${migration.version} failed: ${(err as Error).message}`, { cause: err })
        }
      }
      return { from, to: await version() }
    } finally {
      await client.query("SELECT pg_advisory_unlock(hashtext('metanode schema'))")
    }
  })
}
