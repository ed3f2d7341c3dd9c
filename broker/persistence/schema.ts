/**
 * The tables of the SQLite persistence. They carry an `mqtt_` prefix and the schema version
 * lives in a table of their own rather than in `user_version`, so that they cannot collide
 * with another component's migrations should someone point two components at one file
 * (which they should not: see SqlitePersistenceOptions.file).
 */
import type { Database } from 'better-sqlite3'
import { PACKET_COLUMN_DEFS } from './packet-codec.js'

export const SCHEMA_VERSION = 1

const SCHEMA = `
CREATE TABLE mqtt_persistence_meta (
  key TEXT PRIMARY KEY,
  value TEXT NOT NULL
) WITHOUT ROWID;

-- One row per client and topic filter; record is the JSON of { qos, rh, rap, nl,
-- subscriptionIdentifier? } exactly as subscriptionsByClient returns it.
CREATE TABLE mqtt_subscriptions (
  client_id TEXT NOT NULL,
  topic TEXT NOT NULL,
  qos INTEGER NOT NULL,
  record TEXT NOT NULL,
  PRIMARY KEY (client_id, topic)
) WITHOUT ROWID;

CREATE TABLE mqtt_retained (
  ${PACKET_COLUMN_DEFS},
  UNIQUE (topic)
);

-- The QoS 1/2 queue of persistent sessions. seq is global and only grows while the
-- process runs, so it orders each client's queue; the index on client_id carries the rowid
-- (seq), which makes it the (client_id, seq) order a queue is read in.
CREATE TABLE mqtt_outgoing (
  seq INTEGER PRIMARY KEY,
  client_id TEXT NOT NULL,
  ${PACKET_COLUMN_DEFS}
);
CREATE INDEX mqtt_outgoing_by_client ON mqtt_outgoing (client_id);
CREATE INDEX mqtt_outgoing_by_counter ON mqtt_outgoing (client_id, broker_counter);
-- Partial: a packet is queued without an id, and most rows never get one before they go.
CREATE INDEX mqtt_outgoing_by_message_id ON mqtt_outgoing (client_id, message_id) WHERE message_id IS NOT NULL;

-- Inbound QoS 2 packets between PUBLISH and PUBREL.
CREATE TABLE mqtt_incoming (
  client_id TEXT NOT NULL,
  ${PACKET_COLUMN_DEFS},
  UNIQUE (client_id, message_id)
);

CREATE TABLE mqtt_wills (
  client_id TEXT PRIMARY KEY,
  ${PACKET_COLUMN_DEFS}
);
`

/** Creates the tables in an empty file, or checks that the file holds this schema version. */
export function prepareSchema (db: Database): void {
  const hasMeta = db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'mqtt_persistence_meta'").get() !== undefined
  if (!hasMeta) {
    db.transaction(() => {
      db.exec(SCHEMA)
      db.prepare("INSERT INTO mqtt_persistence_meta (key, value) VALUES ('schema_version', ?)").run(String(SCHEMA_VERSION))
    })()
    return
  }
  const row = db.prepare("SELECT value FROM mqtt_persistence_meta WHERE key = 'schema_version'").get() as { value: string } | undefined
  if (row?.value !== String(SCHEMA_VERSION)) {
    throw new Error(`MQTT persistence schema version ${row?.value ?? 'missing'} in this file, this code knows version ${SCHEMA_VERSION}`)
  }
}
