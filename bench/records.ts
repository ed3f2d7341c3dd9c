/**
 * `npm run bench:records`: what keeping the hub's records (principals, state documents,
 * audit log, ...) in PostgreSQL costs next to the embedded SQLite file, side by side in one
 * run, as ratios to SQLite. Two hubs run in this process (startHub, ephemeral ports, a temp
 * data directory each, logLevel silent, brokerPersistence 'memory' so that the broker's own
 * QoS 1 store does not add its fsyncs to both): (a) with the default SQLite file
 * (journal_mode WAL, synchronous FULL: the WAL is fsynced at every commit), (b) with
 * `databaseUrl` on a private PostgreSQL server started here (bench/lib/postgres-server.ts)
 * with its durability defaults: fsync on, synchronous_commit on.
 *
 * Workloads, each a fixed count of operations with a concurrency knob:
 * - enrol: `POST /v1/devices` with the admin token; each one inserts the principal and its
 *   audit entry (hash-chained: the chain's head is read under a lock) in one transaction;
 * - report: connected devices send StateUpdate `{"reported": …}` at QoS 1 asking for an Ack
 *   and wait for it before the next; each report is a read-modify-write transaction of the
 *   device's state document under its lock (docs/protocol.md §14.2);
 * - connect: CONNECT (signed password) → CONNACK → DISCONNECT of principals the hub has not
 *   seen since they were enrolled (by this round's enrol workload), so each CONNECT reads the
 *   registry; a device's session also reads its state document once ready (pending delta).
 *
 * Rounds alternate the targets (a, b, then b, a, ...) workload by workload, after
 * unrecorded warm-up rounds; medians are reported, because the machine is shared and
 * noisy. The load generator (fetch, mqtt.js, bare sockets) runs in this process with the
 * hubs, so "this process" CPU is hubs + clients, the clients' share being the same for both
 * targets; its main thread, the one event loop they all share, is metered on its own.
 * PostgreSQL's CPU (all its processes) is read from /proc. SQL statements and transactions
 * are counted by wrapping the hub's SqlDatabase; PostgreSQL's WAL fsyncs and bytes come
 * from its statistics (pg_stat_wal).
 *
 * Knobs (environment, all bounded): BENCH_RECORDS_ENROLMENTS (600 per round and target),
 * BENCH_RECORDS_ENROL_CONCURRENCY (8), BENCH_RECORDS_REPORTS (1500), BENCH_RECORDS_DEVICES
 * (16: connected devices, one report in flight each), BENCH_RECORDS_CONNECTS (600),
 * BENCH_RECORDS_CONNECT_CONCURRENCY (8), BENCH_RECORDS_ROUNDS (5), BENCH_RECORDS_WARMUP_ROUNDS
 * (2, unrecorded, before them, at the same counts), BENCH_RECORDS_DATA_DIR
 * (where the SQLite file and PostgreSQL's data directory go; the system's temporary
 * directory by default), BENCH_RECORDS_ONLY (a subset of enrol,report,connect).
 * docs/performance.md ("Records: SQLite and PostgreSQL") describes the run and its figures.
 */
import { AsyncLocalStorage } from 'node:async_hooks'
import { availableParallelism, tmpdir, totalmem } from 'node:os'
import { chmodSync, mkdirSync, readFileSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { randomBytes } from 'node:crypto'
import type { MqttClient } from 'mqtt'
import { startHub, type Hub } from '../src/hub.js'
import type { SqlDatabase } from '../src/store/sql.js'
import { SqliteSql } from '../src/store/sqlite-sql.js'
import { POSTGRES_POOL_MAX_DEFAULT } from '../src/store/postgres-sql.js'
import { encodeEnvelope, parsePayload, MessageType } from '../src/protocol/index.js'
import { connectPassword, enrolMany, forEachLimited, makePrincipal, type BenchPrincipal, type HubAdmin } from './lib/principals.js'
import { connectMqtt } from './lib/flows.js'
import { encodeConnect, rawConnect, rawDisconnect } from './lib/raw-mqtt.js'
import { LatencyRecorder, median } from './lib/stats.js'
import { machineBusyFraction, machineCpu, mainThreadCpuSeconds } from './lib/proc.js'
import { dec, int, table } from './lib/report.js'
import { envNumber } from './lib/knobs.js'
import { postgresServerVersion, startPostgresServer, stopAllPostgresServers, type PostgresServer } from './lib/postgres-server.js'
import { makeRunDir, removeRunDir } from './lib/run-dir.js'
import { diskOf, packageVersion } from './lib/machine.js'

type TargetKey = 'sqlite' | 'postgres'
type WorkloadKey = 'enrol' | 'report' | 'connect'

const WORKLOAD_KEYS: WorkloadKey[] = ['enrol', 'report', 'connect']

const TARGET_LABELS: Record<TargetKey, string> = {
  sqlite: '(a) SQLite file',
  postgres: '(b) PostgreSQL',
}

const WORKLOAD_LABELS: Record<WorkloadKey, string> = {
  enrol: 'enrolments (POST /v1/devices)',
  report: 'state reports (MQTT QoS 1, Ack)',
  connect: 'CONNECTs of uncached principals',
}

const POSTGRES_DATABASE = 'metanode_bench'

interface Knobs {
  enrolments: number
  enrolConcurrency: number
  reports: number
  devices: number
  connects: number
  connectConcurrency: number
  rounds: number
  warmupRounds: number
  dataDir: string
  workloads: WorkloadKey[]
}

function readKnobs (): Knobs {
  const only = (process.env.BENCH_RECORDS_ONLY ?? '').split(',').map(s => s.trim()).filter(Boolean)
  for (const key of only) {
    if (!WORKLOAD_KEYS.includes(key as WorkloadKey)) throw new Error(`BENCH_RECORDS_ONLY: unknown "${key}"; use ${WORKLOAD_KEYS.join(', ')}`)
  }
  const int = { integer: true }
  return {
    enrolments: envNumber('BENCH_RECORDS_ENROLMENTS', 600, 1, 100_000, int),
    enrolConcurrency: envNumber('BENCH_RECORDS_ENROL_CONCURRENCY', 8, 1, 256, int),
    reports: envNumber('BENCH_RECORDS_REPORTS', 1_500, 1, 1_000_000, int),
    devices: envNumber('BENCH_RECORDS_DEVICES', 16, 1, 1_000, int),
    connects: envNumber('BENCH_RECORDS_CONNECTS', 600, 1, 100_000, int),
    connectConcurrency: envNumber('BENCH_RECORDS_CONNECT_CONCURRENCY', 8, 1, 256, int),
    rounds: envNumber('BENCH_RECORDS_ROUNDS', 5, 1, 20, int),
    warmupRounds: envNumber('BENCH_RECORDS_WARMUP_ROUNDS', 2, 0, 20, int),
    dataDir: resolve(process.env.BENCH_RECORDS_DATA_DIR || tmpdir()),
    workloads: only.length > 0 ? WORKLOAD_KEYS.filter(k => only.includes(k)) : WORKLOAD_KEYS,
  }
}

function log (message: string): void {
  process.stderr.write(`[bench:records] ${message}\n`)
}

const sleep = (ms: number): Promise<void> => new Promise(resolve => setTimeout(resolve, ms))

// ---------------------------------------------------------------------------------------
// Counting what the hub asks of its database.

interface SqlCounts {
  /** get, all and run calls: one round trip each on PostgreSQL. */
  statements: number
  /** Of them, those outside any transaction: each its own (read-only, here) transaction on PostgreSQL. */
  standalone: number
  /** Outermost transaction() calls (nested ones join): BEGIN and COMMIT, two round trips on PostgreSQL. */
  transactions: number
  /** lock() calls: pg_advisory_xact_lock, a round trip on PostgreSQL; nothing on SQLite. */
  locks: number
}

/**
 * Wraps the hub's SqlDatabase in place: every repository holds this one object and calls
 * its methods through it, so the counts are all the statements the hub makes.
 */
function countSql (sql: SqlDatabase): SqlCounts {
  const counts: SqlCounts = { statements: 0, standalone: 0, transactions: 0, locks: 0 }
  const inside = new AsyncLocalStorage<true>()
  const get = sql.get.bind(sql) as SqlDatabase['get']
  const all = sql.all.bind(sql) as SqlDatabase['all']
  const run = sql.run.bind(sql)
  const transaction = sql.transaction.bind(sql) as SqlDatabase['transaction']
  const lock = sql.lock.bind(sql)
  const statement = (): void => {
    counts.statements += 1
    if (!inside.getStore()) counts.standalone += 1
  }
  sql.get = (text, params) => { statement(); return get(text, params) }
  sql.all = (text, params) => { statement(); return all(text, params) }
  sql.run = (text, params) => { statement(); return run(text, params) }
  sql.transaction = fn => {
    if (inside.getStore()) return transaction(fn)
    counts.transactions += 1
    return inside.run(true, () => transaction(fn))
  }
  sql.lock = name => { counts.locks += 1; return lock(name) }
  return counts
}

// ---------------------------------------------------------------------------------------
// Devices that report their state and wait for the Ack.

class ReportingDevice {
  readonly #client: MqttClient
  readonly #topic: string
  readonly #id: string
  readonly #waiting = new Map<string, (code: number) => void>()

  private constructor (client: MqttClient, id: string) {
    this.#client = client
    this.#id = id
    this.#topic = `mn/v1/d/${id}/up`
    client.on('message', (_topic, payload) => {
      const parsed = parsePayload(payload, { payloadBytesMax: 1 << 20, direction: 'down' })
      if (!parsed.ok) return
      for (const item of parsed.items) {
        if (item.envelope?.type !== MessageType.Ack) continue
        const body = item.envelope.body as { re?: unknown, ok?: unknown, code?: unknown } | undefined
        if (!(body?.re instanceof Uint8Array)) continue
        const key = Buffer.from(body.re).toString('hex')
        const wake = this.#waiting.get(key)
        this.#waiting.delete(key)
        wake?.(body.ok === true ? 0 : Number(body.code))
      }
    })
  }

  /** Connected, and subscribed at QoS 1 to its down topic, where the Acks come. */
  static async open (port: number, principal: BenchPrincipal): Promise<ReportingDevice> {
    const client = await connectMqtt(port, { clientId: principal.id, username: principal.id, password: connectPassword(principal) })
    try {
      const granted = await client.subscribeAsync(`mn/v1/d/${principal.id}/down`, { qos: 1 })
      if (granted[0]?.qos !== 1) throw new Error(`the down subscription was granted ${JSON.stringify(granted)}`)
    } catch (err) {
      await client.endAsync(true).catch(() => {})
      throw err
    }
    return new ReportingDevice(client, principal.id)
  }

  /** Sends one report at QoS 1 and resolves with its Ack's code (0: accepted). */
  report (seq: number): Promise<number> {
    const id = randomBytes(16)
    const envelope = encodeEnvelope({
      type: MessageType.StateUpdate,
      src: this.#id,
      id,
      ack: true,
      body: { reported: { temp: 20 + (seq % 100) / 10, seq, fan: { speed: seq % 3, mode: 'auto' } } },
    })
    return new Promise((resolve, reject) => {
      const key = id.toString('hex')
      const timer = setTimeout(() => {
        this.#waiting.delete(key)
        reject(new Error(`no Ack for a state report of ${this.#id} within 15 s`))
      }, 15_000)
      this.#waiting.set(key, code => {
        clearTimeout(timer)
        resolve(code)
      })
      this.#client.publish(this.#topic, Buffer.from(envelope), { qos: 1 })
    })
  }

  close (): Promise<void> {
    return this.#client.endAsync(true).catch(() => {})
  }
}

// ---------------------------------------------------------------------------------------
// Targets and the measured window.

interface Target {
  key: TargetKey
  hub: Hub
  admin: HubAdmin
  counts: SqlCounts
  postgres: PostgresServer | null
  devices: ReportingDevice[]
  /** Principals enrolled in this round and not yet connected: the connect workload's. */
  fresh: BenchPrincipal[]
  /** How the hub's engine is set, read back from it. */
  engine: string
}

interface Result {
  workload: WorkloadKey
  key: TargetKey
  round: number
  ops: number
  failures: number
  wallSeconds: number
  rate: number
  p50: number
  p99: number
  /** This process (both hubs and every client) per operation, µs; and the kernel's part of it. */
  processCpuUs: number
  processSystemUs: number
  /** Of it, the main thread's, µs per operation, and its share of the window's wall time. */
  mainCpuUs: number
  mainBusy: number
  /** All of PostgreSQL's processes per operation, µs; null for the SQLite target. */
  postgresCpuUs: number | null
  /** Cores busy with neither this process nor PostgreSQL over the window. */
  otherCores: number
  statements: number
  standalone: number
  transactions: number
  locks: number
  /** PostgreSQL's WAL: fsyncs and bytes per operation, mean ms per fsync. */
  wal: { syncs: number, syncMs: number, bytes: number } | null
}

/**
 * PostgreSQL: has every connection of the hub's pool publish its statistics (see
 * PostgresServer.statsFlush), so that a workload's counters are all in before they are
 * read, and none arrives in a later window. Touching every connection also keeps the pool
 * full: node-postgres closes a connection idle for 10 s, and would reopen it inside a
 * measured window. SQLite: nothing to do.
 */
async function settle (target: Target): Promise<void> {
  if (target.postgres === null) return
  const { sql, afterMs } = target.postgres.statsFlush
  await sleep(afterMs)
  // Concurrent, all connections being idle: the pool hands each one a different connection.
  await Promise.all(Array.from({ length: POSTGRES_POOL_MAX_DEFAULT }, () => target.hub.store.sql.get(sql)))
}

/**
 * Runs `body` (which returns its successful and failed operation counts) as one measured
 * window: wall time, CPU of this process and of PostgreSQL, the machine, the SQL counts,
 * and PostgreSQL's statistics once they have been published.
 */
async function measure (target: Target, workload: WorkloadKey, round: number, latencies: LatencyRecorder, body: () => Promise<{ ops: number, failures: number }>): Promise<Result> {
  const wal0 = await target.postgres?.walStats()
  const counts0 = { ...target.counts }
  const pg0 = target.postgres?.cpuSeconds() ?? 0
  const self0 = process.cpuUsage()
  const main0 = mainThreadCpuSeconds()
  const machine0 = machineCpu()
  const t0 = performance.now()
  const { ops, failures } = await body()
  const wallSeconds = (performance.now() - t0) / 1000
  const self = process.cpuUsage(self0)
  const mainSeconds = mainThreadCpuSeconds() - main0
  const machineBusy = machineBusyFraction(machine0, machineCpu())
  const pgSeconds = target.postgres ? target.postgres.cpuSeconds() - pg0 : 0
  const counts1 = { ...target.counts }
  await settle(target)
  const wal1 = await target.postgres?.walStats()
  const [p50, p99] = latencies.percentiles([50, 99])
  const per = (n: number): number => ops > 0 ? n / ops : NaN
  const selfSeconds = (self.user + self.system) / 1e6
  return {
    workload,
    key: target.key,
    round,
    ops,
    failures,
    wallSeconds,
    rate: ops / wallSeconds,
    p50,
    p99,
    processCpuUs: per(selfSeconds * 1e6),
    processSystemUs: per(self.system),
    mainCpuUs: per(mainSeconds * 1e6),
    mainBusy: mainSeconds / wallSeconds,
    postgresCpuUs: target.postgres ? per(pgSeconds * 1e6) : null,
    otherCores: machineBusy * availableParallelism() - (selfSeconds + pgSeconds) / wallSeconds,
    statements: per(counts1.statements - counts0.statements),
    standalone: per(counts1.standalone - counts0.standalone),
    transactions: per(counts1.transactions - counts0.transactions),
    locks: per(counts1.locks - counts0.locks),
    wal: wal0 && wal1
      ? {
          syncs: per(wal1.syncs - wal0.syncs),
          syncMs: wal1.syncs > wal0.syncs ? (wal1.syncMs - wal0.syncMs) / (wal1.syncs - wal0.syncs) : NaN,
          bytes: per(wal1.bytes - wal0.bytes),
        }
      : null,
  }
}

async function enrolOne (admin: HubAdmin, principal: BenchPrincipal): Promise<boolean> {
  const res = await fetch(`http://127.0.0.1:${admin.httpPort}/v1/devices`, {
    method: 'POST',
    headers: { authorization: `Bearer ${admin.adminToken}`, 'content-type': 'application/json' },
    body: JSON.stringify({ publicKey: principal.publicKeyHex, role: principal.role }),
    signal: AbortSignal.timeout(15_000),
  })
  await res.arrayBuffer()
  return res.status === 201
}

async function runEnrol (target: Target, knobs: Knobs, round: number, count: number): Promise<Result> {
  // Keys are made before the clock starts: the generator's work is not the records'.
  const principals = Array.from({ length: count }, () => makePrincipal('device'))
  const latencies = new LatencyRecorder(count)
  let failures = 0
  return measure(target, 'enrol', round, latencies, async () => {
    await forEachLimited(principals, knobs.enrolConcurrency, async principal => {
      const t0 = performance.now()
      if (await enrolOne(target.admin, principal)) {
        latencies.record(performance.now() - t0)
        target.fresh.push(principal)
      } else {
        failures += 1
      }
    })
    return { ops: count - failures, failures }
  })
}

async function runReport (target: Target, round: number, count: number): Promise<Result> {
  const latencies = new LatencyRecorder(count)
  let failures = 0
  let next = 0
  return measure(target, 'report', round, latencies, async () => {
    // One report in flight per device: the devices are the concurrency.
    await Promise.all(target.devices.map(async device => {
      while (next < count) {
        const seq = next++
        const t0 = performance.now()
        if (await device.report(seq) === 0) latencies.record(performance.now() - t0)
        else failures += 1
      }
    }))
    return { ops: count - failures, failures }
  })
}

async function runConnect (target: Target, knobs: Knobs, round: number, count: number): Promise<Result> {
  // This round's enrolments, topped up (before the clock) when the enrol workload is off or
  // made fewer: every CONNECT is of a principal the hub's directory has not cached.
  const missing = count - target.fresh.length
  if (missing > 0) {
    target.fresh.push(...await enrolMany(target.admin, 'device', missing))
    // Those enrolments' statistics must not land in the window.
    await settle(target)
  }
  const principals = target.fresh.splice(0, count)
  target.fresh = []
  // Passwords signed before the clock starts (each holds the current time: §2's skew window).
  const packets = principals.map(p => encodeConnect({ clientId: p.id, username: p.id, password: connectPassword(p) }))
  const latencies = new LatencyRecorder(count)
  let failures = 0
  return measure(target, 'connect', round, latencies, async () => {
    await forEachLimited(packets, knobs.connectConcurrency, async packet => {
      const t0 = performance.now()
      const { socket, returnCode } = await rawConnect(target.hub.mqttPort, packet, null)
      if (returnCode === 0) latencies.record(performance.now() - t0)
      else failures += 1
      await rawDisconnect(socket)
    })
    return { ops: count - failures, failures }
  })
}

function runWorkload (target: Target, workload: WorkloadKey, knobs: Knobs, round: number): Promise<Result> {
  switch (workload) {
    case 'enrol': return runEnrol(target, knobs, round, knobs.enrolments)
    case 'report': return runReport(target, round, knobs.reports)
    case 'connect': return runConnect(target, knobs, round, knobs.connects)
  }
}

function roundLine (r: Result): string {
  const pg = r.postgresCpuUs === null ? '' : ` + PostgreSQL ${dec(r.postgresCpuUs, 0)}`
  const trouble = r.failures > 0 ? `; ${r.failures} FAILED` : ''
  const wal = r.wal ? `; WAL fsyncs/op ${dec(r.wal.syncs, 2)}` : ''
  return `round ${r.round} ${r.workload} ${r.key}: ${int(r.ops)} in ${dec(r.wallSeconds, 2)} s = ${int(r.rate)}/s; p50/p99 ${dec(r.p50, 2)}/${dec(r.p99, 2)} ms; ` +
    `CPU µs/op: this process ${dec(r.processCpuUs, 0)} (main thread ${dec(r.mainCpuUs, 0)}, busy ${Math.round(r.mainBusy * 100)} %)${pg}; other processes ${dec(r.otherCores, 2)} cores${wal}${trouble}`
}

// ---------------------------------------------------------------------------------------
// The machine and the disk.


// ---------------------------------------------------------------------------------------
// The report.

function summarize (knobs: Knobs, results: Result[]): string {
  const out: string[] = []
  const med = (rows: Result[], pick: (r: Result) => number | null): number => median(rows.map(pick).filter((v): v is number => v !== null && Number.isFinite(v)))
  const of = (workload: WorkloadKey, key: TargetKey): Result[] => results.filter(r => r.workload === workload && r.key === key)
  const totalCpu = (r: Result): number => r.processCpuUs + (r.postgresCpuUs ?? 0)

  const rows: string[][] = []
  const ratios: string[] = []
  for (const workload of knobs.workloads) {
    const a = of(workload, 'sqlite')
    const b = of(workload, 'postgres')
    for (const [key, rounds] of [['sqlite', a], ['postgres', b]] as const) {
      const rates = rounds.map(r => r.rate)
      rows.push([
        key === 'sqlite' ? WORKLOAD_LABELS[workload] : '',
        TARGET_LABELS[key],
        `${int(med(rounds, r => r.rate))} (${int(Math.min(...rates))}–${int(Math.max(...rates))})`,
        dec(med(rounds, r => r.rate) / med(a, r => r.rate), 2),
        `${dec(med(rounds, r => r.p50), 2)} / ${dec(med(rounds, r => r.p99), 2)}`,
        dec(med(rounds, r => r.processCpuUs), 0),
        key === 'postgres' ? dec(med(rounds, r => r.postgresCpuUs), 0) : '–',
        dec(med(rounds, totalCpu), 0),
        dec(med(rounds, totalCpu) / med(a, totalCpu), 2),
      ])
    }
    ratios.push(`${workload} ${dec(med(b, r => r.rate) / med(a, r => r.rate), 2)}`)
  }
  out.push(table(
    ['workload', 'target', 'ops/s, median (range)', '÷ (a)', 'p50 / p99 ms', 'this process CPU µs/op (hubs + clients)', 'PostgreSQL CPU µs/op', 'CPU µs/op, both', '÷ (a)'],
    rows,
  ))
  out.push(`\n(b) / (a) by ops/s: ${ratios.join(', ')}.`)

  out.push('\n### Where it goes: what each operation asks of the database (medians over rounds)\n')
  const detail: string[][] = []
  for (const workload of knobs.workloads) {
    for (const key of ['sqlite', 'postgres'] as const) {
      const rounds = of(workload, key)
      const tx = med(rounds, r => r.transactions)
      const statements = med(rounds, r => r.statements)
      const locks = med(rounds, r => r.locks)
      const pg = key === 'postgres'
      detail.push([
        key === 'sqlite' ? workload : '',
        TARGET_LABELS[key],
        `${dec(statements, 2)} (${dec(med(rounds, r => r.standalone), 2)})`,
        dec(tx, 2),
        dec(locks, 2),
        pg ? dec(statements + 2 * tx + locks, 2) : '0 (in-process)',
        pg ? dec(med(rounds, r => r.wal?.syncs ?? null), 2) : `${dec(tx, 2)} *`,
        // A mean over a handful of the WAL writer's fsyncs says nothing about commits.
        pg && med(rounds, r => r.wal?.syncs ?? null) >= 0.05 ? dec(med(rounds, r => r.wal?.syncMs ?? null), 2) : '–',
        pg ? int(med(rounds, r => r.wal?.bytes ?? null)) : '–',
        `${dec(med(rounds, r => r.mainCpuUs), 0)} (${Math.round(med(rounds, r => r.mainBusy) * 100)} %)`,
        dec(med(rounds, r => r.processSystemUs), 0),
      ])
    }
  }
  out.push(table(
    ['workload', 'target', 'SQL statements/op (outside a transaction)', 'transactions/op', 'locks/op', 'round trips/op', 'WAL fsyncs/op', 'fsync ms, mean', 'WAL bytes/op', 'this process: main thread CPU µs/op (busy)', 'this process: system CPU µs/op'],
    detail,
  ))
  out.push('\n* SQLite (journal_mode WAL, synchronous FULL) fsyncs its WAL once per write transaction, on the hub\'s main thread: not counted, this is the transaction count (every transaction here writes). ' +
    'Round trips on PostgreSQL: each statement, BEGIN and COMMIT of each transaction, and each advisory lock (pg_advisory_xact_lock). ' +
    'PostgreSQL\'s WAL fsyncs (pg_stat_wal) are every process\'s, the WAL writer\'s included; a commit that finds its WAL already flushed by another\'s fsync needs none.')

  const failed = results.filter(r => r.failures > 0)
  out.push(failed.length === 0
    ? '\nEvery operation of every round succeeded (201 for enrolments, an ok Ack for reports, CONNACK 0 for CONNECTs).'
    : `\nRounds with failed operations: ${failed.map(r => `round ${r.round} ${r.workload} ${r.key} (${r.failures})`).join('; ')}.`)

  out.push('\n### Rounds\n')
  out.push(results.map(roundLine).join('\n'))
  return out.join('\n')
}

// ---------------------------------------------------------------------------------------

const hubs: Hub[] = []
const deviceClients: ReportingDevice[] = []

async function openTarget (key: TargetKey, root: string, knobs: Knobs, postgres: PostgresServer | null): Promise<Target> {
  const dataDir = join(root, key)
  const hub = await startHub({
    host: '127.0.0.1',
    mqttPort: 0,
    httpPort: 0,
    dataDir,
    logLevel: 'silent',
    brokerPersistence: 'memory',
    databaseUrl: postgres ? await postgres.createDatabase(POSTGRES_DATABASE) : null,
  })
  hubs.push(hub)
  const { sql } = hub.store
  const engine = sql instanceof SqliteSql
    ? `SQLite file ${join(dataDir, 'metanode.db')}, journal_mode ${String(sql.connection.pragma('journal_mode', { simple: true }))}, synchronous ${['OFF', 'NORMAL', 'FULL', 'EXTRA'][Number(sql.connection.pragma('synchronous', { simple: true }))]}`
    : `PostgreSQL database ${POSTGRES_DATABASE}, node-postgres pool of ${POSTGRES_POOL_MAX_DEFAULT} connections`
  const admin = { httpPort: hub.httpPort, adminToken: hub.adminToken }
  const target: Target = { key, hub, admin, counts: countSql(sql), postgres, devices: [], fresh: [], engine }
  if (knobs.workloads.includes('report')) {
    const principals = await enrolMany(admin, 'device', knobs.devices)
    for (const principal of principals) {
      const device = await ReportingDevice.open(hub.mqttPort, principal)
      deviceClients.push(device)
      target.devices.push(device)
    }
  }
  return target
}


/** Clients first, then the hubs (the PostgreSQL one closes its pool), then the server. */
async function closeEverything (): Promise<void> {
  await Promise.all(deviceClients.splice(0).map(d => d.close()))
  for (const hub of hubs.splice(0)) await hub.close().catch(err => log(`closing a hub: ${(err as Error).message}`))
  await stopAllPostgresServers()
  removeRunDir()
}

async function main (): Promise<void> {
  const knobs = readKnobs()
  const pgVersion = postgresServerVersion()
  if (pgVersion === null) throw new Error('PostgreSQL is not installed (Debian: apt-get install postgresql): bench:records compares against it')
  const started = performance.now()
  mkdirSync(knobs.dataDir, { recursive: true })
  const root = makeRunDir(knobs.dataDir, 'metanode-records-')
  // As root the server runs as `postgres`, which must reach its data directory in here.
  if (process.getuid?.() === 0) chmodSync(root, 0o711)

  const cpuModel = /^model name\s*:\s*(.+)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1] ?? 'unknown CPU'
  const idle0 = machineCpu()
  await sleep(1_000)
  const background = machineBusyFraction(idle0, machineCpu()) * availableParallelism()

  log(`starting PostgreSQL ${pgVersion} in ${root}`)
  const pgDir = join(root, 'postgres-data')
  mkdirSync(pgDir)
  const postgres = await startPostgresServer(pgDir)
  const s = postgres.settings
  log('starting the hubs')
  const targets = [await openTarget('sqlite', root, knobs, null), await openTarget('postgres', root, knobs, postgres)]

  const facts = [
    `machine: ${availableParallelism()} cores (nproc, shared with other workloads), ${cpuModel}, ${dec(totalmem() / 2 ** 30, 0)} GiB; Node ${process.version}; better-sqlite3 ${packageVersion('better-sqlite3')}, pg ${packageVersion('pg')}, PostgreSQL ${s.server_version}`,
    `data (the SQLite file, PostgreSQL's data directory) under ${root}, on ${diskOf(root)}`,
    `background load before the run: ${dec(background, 2)} cores busy${background > 0.3 ? ' (the machine is not quiet: expect noisy figures)' : ''}`,
  ]
  for (const fact of facts) log(fact)
  const engines = [
    `(a) ${targets[0].engine}`,
    `(b) ${targets[1].engine}; server (pid ${postgres.pid}, port ${postgres.port}) with PostgreSQL's durability defaults: fsync ${s.fsync}, synchronous_commit ${s.synchronous_commit}, full_page_writes ${s.full_page_writes}, wal_sync_method ${s.wal_sync_method}, commit_delay ${s.commit_delay}; shared_buffers ${s.shared_buffers}, max_connections ${s.max_connections}`,
  ]
  for (const engine of engines) log(engine)

  // Unrecorded rounds first (numbered from 1 - warm-up rounds): both hubs run in this one
  // process, whose rates here kept rising for the first few thousand operations (JIT),
  // and the pool opens its connections.
  const results: Result[] = []
  for (let round = 1 - knobs.warmupRounds; round <= knobs.rounds; round++) {
    // (a, b) in odd rounds, (b, a) in even ones: neither always runs on the other's heels.
    const order = Math.abs(round) % 2 === 1 ? targets : [...targets].reverse()
    for (const workload of knobs.workloads) {
      for (const target of order) {
        const result = await runWorkload(target, workload, knobs, round)
        if (round > 0) results.push(result)
        log(`${round > 0 ? '' : 'warm-up '}${roundLine(result)}`)
      }
    }
  }

  const chains: string[] = []
  for (const target of targets) {
    const chain = await target.hub.audit.verify()
    chains.push(chain.ok ? `${target.key} ${int(chain.entries)} entries intact` : `${target.key} BROKEN at seq ${chain.brokenAt}: ${chain.reason}`)
  }
  await closeEverything()

  console.log('# Metanode records benchmark: SQLite file vs PostgreSQL\n')
  console.log(`${facts.join('; ')}.\n`)
  console.log(`${engines.join('.\n')}.\n`)
  console.log(`Both hubs in the bench process (startHub, brokerPersistence 'memory', logLevel silent), with the load generator (fetch, mqtt.js, bare sockets) on the same cores. ` +
    `Workloads per round and target: ${knobs.workloads.map(w => {
      switch (w) {
        case 'enrol': return `${knobs.enrolments} enrolments (POST /v1/devices, admin token) ${knobs.enrolConcurrency} at a time`
        case 'report': return `${knobs.reports} StateUpdate reports at QoS 1 with an Ack asked for, from ${knobs.devices} connected devices, one in flight each`
        case 'connect': return `${knobs.connects} CONNECT → CONNACK → DISCONNECT cycles of principals enrolled in the round and not yet seen by the broker, ${knobs.connectConcurrency} at a time`
      }
    }).join('; ')}. ` +
    `${knobs.warmupRounds} unrecorded warm-up rounds, then ${knobs.rounds} rounds, targets alternating (a, b / b, a); medians.\n`)
  console.log(summarize(knobs, results))
  console.log(`\nAudit chains verified at the end: ${chains.join('; ')}.`)
  console.log(`\nTotal run time: ${dec((performance.now() - started) / 1000, 0)} s.`)
}

/** Set on a signal: the run's own errors from then on are the hubs closing under it. */
let stopping = false

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    stopping = true
    log(`${signal}: stopping the hubs and PostgreSQL`)
    closeEverything().finally(() => process.exit(130))
  })
}

main().catch(async err => {
  if (stopping) return
  console.error(err)
  await closeEverything()
  process.exitCode = 1
})
