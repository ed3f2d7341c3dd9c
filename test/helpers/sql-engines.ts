/**
 * The engines every repository's test suite runs against, one suite for both (as
 * mqtt.js's abstract store tests do): the embedded SQLite file and a real PostgreSQL
 * server. Use it at a test file's top level:
 *
 *   for (const engine of sqlEngines()) {
 *     describe(`principals on ${engine.name}`, { skip: engine.skip }, () => {
 *       test('…', async t => { const db = await engine.open(t) … })
 *     })
 *   }
 *
 * One PostgreSQL server per test file, started by the first test that needs it; each test
 * gets a fresh database (or SQLite file) with the schema applied, closed when it ends.
 */
import { after, type TestContext } from 'node:test'
import { join } from 'node:path'
import { openPostgres, openSqlite } from '../../src/store/database.js'
import type { SqlDatabase } from '../../src/store/sql.js'
import type { PostgresSql } from '../../src/store/postgres-sql.js'
import type { SqliteSql } from '../../src/store/sqlite-sql.js'
import { tempDir } from './hub.js'
import { postgresSkipReason, startPostgres, type TestPostgres } from './postgres.js'

type After = Pick<TestContext, 'after'>

export interface SqlEngine<Db extends SqlDatabase = SqlDatabase> {
  name: 'sqlite' | 'postgres'
  /** Why the engine's tests cannot run here, or false. */
  skip: string | false
  /** A fresh database with the hub's schema, closed when `t` ends. */
  open (t: After): Promise<Db>
  /** A URL (postgres) or file path (sqlite) of a fresh database, for a whole hub. */
  fresh (t: After): Promise<{ databaseUrl?: string, dataDir: string }>
}

let server: Promise<TestPostgres> | null = null
// Registered when the test file imports this module, so at the file's top level: the server
// outlives the test that started it and stops when the file's tests are done.
after(async () => { if (server) await (await server).stop() })

/** The shared per-file PostgreSQL server, started on first use. */
export function testPostgres (): Promise<TestPostgres> {
  server ??= startPostgres({ after: () => {} })
  return server
}

export const sqliteEngine: SqlEngine<SqliteSql> = {
  name: 'sqlite',
  skip: false,
  async open (t) {
    const db = openSqlite(join(tempDir(t), 'metanode.db'))
    t.after(() => db.close())
    return db
  },
  async fresh (t) {
    return { dataDir: tempDir(t) }
  },
}

export const postgresEngine: SqlEngine<PostgresSql> = {
  name: 'postgres',
  skip: postgresSkipReason(),
  async open (t) {
    const url = await (await testPostgres()).createDatabase()
    const db = await openPostgres({ url })
    t.after(() => db.close())
    return db
  },
  async fresh (t) {
    return { databaseUrl: await (await testPostgres()).createDatabase(), dataDir: tempDir(t) }
  },
}

/**
 * One fresh database of `engine` that several connections share, as a fleet's processes
 * do: `target` names it for another process (its URL, or the SQLite file's path), and each
 * `connect()` opens one more connection, closed when `t` ends. The first applies the schema.
 */
export async function sharedDatabase (engine: SqlEngine, t: After): Promise<{ target: string, connect (): Promise<SqlDatabase> }> {
  const { databaseUrl, dataDir } = await engine.fresh(t)
  const target = databaseUrl ?? join(dataDir, 'metanode.db')
  return {
    target,
    async connect () {
      const db = databaseUrl !== undefined ? await openPostgres({ url: databaseUrl }) : openSqlite(target)
      t.after(() => db.close())
      return db
    },
  }
}

export function sqlEngines (): Array<SqlEngine> {
  return [sqliteEngine, postgresEngine]
}
