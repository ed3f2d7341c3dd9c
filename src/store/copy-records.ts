/**
 * Copies a hub's records from its SQLite file into an empty PostgreSQL database: the way a
 * fleet that outgrows one host moves its records to a database every host reaches. The two
 * schemas have the same tables and columns (migrations.ts, postgres-migrations.ts), so
 * rows go across as they are, in one PostgreSQL transaction: all of them or none.
 */
import BetterSqlite3 from 'better-sqlite3'
import { StoreSchemaError } from '../errors.js'
import { SCHEMA_VERSION, userVersion } from './migrations.js'
import type { PostgresSql } from './postgres-sql.js'
import type { SqlValue } from './sql.js'

/** Every table of the schema, parents before the tables whose foreign keys point at them. */
export const RECORD_TABLES = Object.freeze([
  'provisioning_tokens', 'principals', 'device_states', 'audit_log', 'policy_rules',
  'zk_leaves', 'zk_roots', 'zk_frontier', 'zk_claims', 'zk_balances', 'change_counters',
])

/** Rows per INSERT: well under PostgreSQL's 65,535 parameters with the widest table (9 columns). */
const ROWS_PER_INSERT = 500

export interface CopyReport {
  /** Rows copied, per table. */
  rows: Record<string, number>
}

/**
 * Copies every row of `file` (a hub's metanode.db; the hub must be stopped) into `target`,
 * which must be at the same schema version and hold no records yet.
 */
export async function copySqliteRecords (file: string, target: PostgresSql): Promise<CopyReport> {
  const source = new BetterSqlite3(file, { readonly: true, fileMustExist: true })
  try {
    const version = userVersion(source)
    if (version !== SCHEMA_VERSION) {
      throw new StoreSchemaError(`${file} is at schema version ${version}, this hub's is ${SCHEMA_VERSION}: start this hub on it once (it migrates), stop it, then copy`)
    }
    const tables = source.prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'").pluck().all() as string[]
    const unknown = tables.filter(name => !RECORD_TABLES.includes(name))
    // A table this list does not know would be left behind silently.
    if (unknown.length > 0) throw new StoreSchemaError(`${file} has tables this copy does not know: ${unknown.join(', ')}`)

    const rows: Record<string, number> = {}
    await target.transaction(async () => {
      for (const table of RECORD_TABLES) {
        const present = await target.get<{ n: number }>(`SELECT count(*) AS n FROM ${table}`)
        if (present!.n > 0) throw new StoreSchemaError(`the PostgreSQL database already holds records (${table}): copy only into an empty one`)
      }
      for (const table of RECORD_TABLES) {
        rows[table] = await copyTable(source, target, table)
      }
    })
    return { rows }
  } finally {
    source.close()
  }
}

async function copyTable (source: BetterSqlite3.Database, target: PostgresSql, table: string): Promise<number> {
  const columns = (source.prepare(`SELECT name FROM pragma_table_info(?) ORDER BY cid`).pluck().all(table) as string[])
  const placeholders = `(${columns.map(() => '?').join(', ')})`
  let batch: SqlValue[][] = []
  let copied = 0
  const flush = async (): Promise<void> => {
    if (batch.length === 0) return
    await target.run(`INSERT INTO ${table} (${columns.join(', ')}) VALUES ${batch.map(() => placeholders).join(', ')}`, batch.flat())
    copied += batch.length
    batch = []
  }
  // iterate() reads row by row, so a large audit log is never in memory whole.
  for (const row of source.prepare(`SELECT ${columns.join(', ')} FROM ${table}`).raw().iterate() as Iterable<SqlValue[]>) {
    batch.push(row)
    if (batch.length >= ROWS_PER_INSERT) await flush()
  }
  await flush()
  return copied
}
