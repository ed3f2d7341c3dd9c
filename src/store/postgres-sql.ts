/**
 * SqlDatabase over a PostgreSQL server (node-postgres pool): the fleet's one truth when its
 * hub processes run on several hosts, where one SQLite file cannot be shared.
 */
import { AsyncLocalStorage } from 'node:async_hooks'
import { createHash } from 'node:crypto'
import pg from 'pg'
import type { SqlDatabase, SqlRunResult, SqlValue } from './sql.js'

export interface PostgresOptions {
  /** postgres://user:password@host:port/database */
  url: string
  /** Connections in the pool. */
  poolMax?: number
  /** How long a statement may run before the server cancels it, in ms. */
  statementTimeoutMs?: number
  /** Told about errors of idle connections (the server restarted, say); the pool replaces them. */
  onIdleError?: (err: Error) => void
}

export const POSTGRES_POOL_MAX_DEFAULT = 10
export const POSTGRES_STATEMENT_TIMEOUT_MS_DEFAULT = 10_000

// OIDs of int8 (count(*), BIGINT columns) and numeric (sum of BIGINTs): read as numbers, as
// SQLite returns them. Every integer the hub keeps (ms timestamps, counts, amounts) fits in
// 53 bits; one that does not is an error, never a silently rounded value.
const INT8_OID = 20
const NUMERIC_OID = 1700

function parseSafeInteger (text: string): number {
  const value = Number(text)
  if (!Number.isSafeInteger(value)) throw new RangeError(`integer ${text} from PostgreSQL is outside the safe range`)
  return value
}

const typeParsers = {
  getTypeParser (oid: number, format?: string): (text: string) => unknown {
    if (oid === INT8_OID || oid === NUMERIC_OID) return parseSafeInteger
    return pg.types.getTypeParser(oid, format as 'text')
  },
}

interface OpenTransaction {
  client: pg.PoolClient
  open: boolean
}

export class PostgresSql implements SqlDatabase {
  readonly dialect = 'postgres' as const
  readonly #pool: pg.Pool
  readonly #context = new AsyncLocalStorage<OpenTransaction>()
  /** `?` placeholders rewritten as `$n`, per statement text. */
  readonly #texts = new Map<string, string>()
  #closed: Promise<void> | null = null

  constructor (options: PostgresOptions) {
    this.#pool = new pg.Pool({
      connectionString: options.url,
      max: options.poolMax ?? POSTGRES_POOL_MAX_DEFAULT,
      statement_timeout: options.statementTimeoutMs ?? POSTGRES_STATEMENT_TIMEOUT_MS_DEFAULT,
      types: typeParsers,
    })
    // An idle connection's error is emitted on the pool; unhandled, it would end the process.
    this.#pool.on('error', err => options.onIdleError?.(err))
  }

  async get<Row> (sql: string, params: readonly SqlValue[] = []): Promise<Row | undefined> {
    return (await this.#query(sql, params)).rows[0] as Row | undefined
  }

  async all<Row> (sql: string, params: readonly SqlValue[] = []): Promise<Row[]> {
    return (await this.#query(sql, params)).rows as Row[]
  }

  async run (sql: string, params: readonly SqlValue[] = []): Promise<SqlRunResult> {
    return { changes: (await this.#query(sql, params)).rowCount ?? 0 }
  }

  async transaction<T> (fn: () => Promise<T>): Promise<T> {
    if (this.#context.getStore()?.open) return fn()
    const client = await this.#pool.connect()
    const open: OpenTransaction = { client, open: true }
    let broken: Error | undefined
    try {
      await client.query('BEGIN')
      const result = await this.#context.run(open, fn)
      await client.query('COMMIT')
      return result
    } catch (err) {
      await client.query('ROLLBACK').catch((rollbackErr: Error) => { broken = rollbackErr })
      throw err
    } finally {
      open.open = false
      // A connection whose ROLLBACK failed is in an unknown state: the pool drops it.
      client.release(broken)
    }
  }

  async lock (name: string): Promise<void> {
    const open = this.#context.getStore()
    if (!open?.open) throw new Error('lock() is only meaningful inside a transaction')
    await open.client.query('SELECT pg_advisory_xact_lock($1)', [advisoryKey(name)])
  }

  /** Runs `fn` on one connection of its own, outside any transaction (migrations use it). */
  async withConnection<T> (fn: (client: pg.PoolClient) => Promise<T>): Promise<T> {
    const client = await this.#pool.connect()
    try {
      return await fn(client)
    } finally {
      client.release()
    }
  }

  close (): Promise<void> {
    this.#closed ??= this.#pool.end()
    return this.#closed
  }

  #query (sql: string, params: readonly SqlValue[]): Promise<pg.QueryResult> {
    const open = this.#context.getStore()
    const target = open?.open ? open.client : this.#pool
    return target.query(this.#text(sql), params as SqlValue[])
  }

  #text (sql: string): string {
    let text = this.#texts.get(sql)
    if (text === undefined) {
      text = numberPlaceholders(sql)
      if (this.#texts.size >= 1_000) this.#texts.clear()
      this.#texts.set(sql, text)
    }
    return text
  }
}

/** `?` → `$1`, `$2`, …, leaving quoted strings and identifiers alone. */
export function numberPlaceholders (sql: string): string {
  let out = ''
  let n = 0
  let quote: string | null = null
  for (const char of sql) {
    if (quote) {
      if (char === quote) quote = null
    } else if (char === "'" || char === '"') {
      quote = char
    } else if (char === '?') {
      out += `$${++n}`
      continue
    }
    out += char
  }
  return out
}

/** A lock name as the signed 64-bit key pg_advisory_xact_lock takes. */
function advisoryKey (name: string): string {
  return createHash('sha256').update(`metanode:${name}`).digest().readBigInt64BE(0).toString()
}
