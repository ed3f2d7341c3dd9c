/**
 * `npm run bench:durability`: QoS 1 telemetry through the hub with (a) the in-memory broker
 * persistence, (b) the durable one (SQLite `broker.db`, WAL fsynced before a device's PUBACK)
 * and (c) three hub processes in cluster mode on one private Redis, side by side in one run,
 * as ratios to (a). The aim: (b) ≥ 0.6 of (a). Optionally (d): the same cluster with Redis's
 * append-only file fsynced on every write (`appendfsync always`), what an operator who must
 * lose nothing from Redis would run.
 *
 * The telemetry: devices publish unsigned StatusUpdate envelopes (~100-byte bodies) at QoS 1
 * on their `up` topics; one service with a persistent session (clean: false) subscribed at
 * QoS 1 to `mn/v1/bridge/#` receives the bridge records. A message counts when the service
 * has its record (end to end); the devices' PUBACK rate is reported beside it. Closed loop:
 * each device keeps at most BENCH_DURABILITY_WINDOW messages outstanding (sent, and not yet
 * both acknowledged and delivered). Rounds alternate the targets (a, b, c, [d], a, b, ...),
 * and medians are reported, because the machine is shared and noisy. The hub processes
 * (bench/servers/hub-server.ts) stay up for the whole run; the load generator (mqtt.js
 * clients) runs in this process on the same cores, and the output says how much it took.
 *
 * Knobs (environment, all bounded): BENCH_DURABILITY_DEVICES (10), BENCH_DURABILITY_WINDOW
 * (16), BENCH_DURABILITY_SECONDS (5, measured per round), BENCH_DURABILITY_WARMUP_SECONDS (2,
 * per round), BENCH_DURABILITY_ROUNDS (3), BENCH_DURABILITY_BODY_BYTES (100),
 * BENCH_DURABILITY_DATA_DIR (where the hubs' data directories and Redis's files go, the
 * system's temporary directory by default: the durable persistence fsyncs its WAL there),
 * BENCH_DURABILITY_AOF (1: also measure (d); 0: skip it), BENCH_DURABILITY_ONLY (a subset of
 * memory,durable,cluster,cluster-aof), BENCH_DURABILITY_PROFILE_DIR (after the measured
 * rounds, one more round per target with a CPU profile of every hub process),
 * BENCH_DURABILITY_HUB_NODE_ARGS (extra node flags for the hub processes).
 * docs/performance.md ("Durability and cluster") describes the run and its figures.
 */
import { availableParallelism, tmpdir } from 'node:os'
import { mkdirSync, readFileSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { randomBytes } from 'node:crypto'
import type { MqttClient } from 'mqtt'
import { startNodeBroker, stopAllChildren, type BrokerProcess } from './lib/children.js'
import { connectPassword, enrolMany, type BenchPrincipal } from './lib/principals.js'
import { bodyPadding, connectMqtt, telemetryBody } from './lib/flows.js'
import { nowMs } from './lib/telemetry.js'
import { LatencyRecorder, median } from './lib/stats.js'
import { machineBusyFraction, machineCpu, ticksPerSecond, type MachineCpu } from './lib/proc.js'
import { dec, int, table } from './lib/report.js'
import { commandStats, redisServerVersion, setAppendFsyncAlways, startRedisServer, stopAllRedisServers, type RedisServer } from './lib/redis-server.js'
import { decodeBridgeRecord, encodeEnvelope } from '../src/protocol/index.js'
import { envNumber } from './lib/knobs.js'
import { makeRunDir, removeRunDir } from './lib/run-dir.js'
import { diskOf, packageVersion } from './lib/machine.js'

type TargetKey = 'memory' | 'durable' | 'cluster' | 'cluster-aof'

const TARGET_KEYS: TargetKey[] = ['memory', 'durable', 'cluster', 'cluster-aof']

const LABELS: Record<TargetKey, string> = {
  memory: '(a) 1 process, in-memory persistence',
  durable: '(b) 1 process, durable (SQLite, WAL fsynced)',
  cluster: '(c) 3 processes, cluster on Redis (no Redis persistence)',
  'cluster-aof': '(d) 3 processes, cluster on Redis, AOF appendfsync always',
}

/** Processes of a cluster target: the service's and two more, as in test/cluster. */
const CLUSTER_PROCESSES = 3
/** No delivery and no PUBACK for this long while loaded: a stall (a lost live delivery). */
const STALL_MS = 2_000

interface Knobs {
  devices: number
  window: number
  seconds: number
  warmupSeconds: number
  rounds: number
  bodyBytes: number
  dataDir: string
  targets: TargetKey[]
  profileDir: string | null
  hubNodeArgs: string[]
}

function readKnobs (): Knobs {
  const num = envNumber
  const only = (process.env.BENCH_DURABILITY_ONLY ?? '').split(',').map(s => s.trim()).filter(Boolean)
  for (const key of only) {
    if (!TARGET_KEYS.includes(key as TargetKey)) throw new Error(`BENCH_DURABILITY_ONLY: unknown "${key}"; use ${TARGET_KEYS.join(', ')}`)
  }
  const aof = process.env.BENCH_DURABILITY_AOF !== '0'
  let targets = only.length > 0 ? TARGET_KEYS.filter(k => only.includes(k)) : TARGET_KEYS.filter(k => aof || k !== 'cluster-aof')
  const redis = redisServerVersion()
  if (redis === null && targets.some(k => k.startsWith('cluster'))) {
    log('redis-server is not installed (Debian: apt-get install redis-server): the cluster targets are skipped')
    targets = targets.filter(k => !k.startsWith('cluster'))
  }
  return {
    devices: Math.round(num('BENCH_DURABILITY_DEVICES', 10, 1, 500)),
    window: Math.round(num('BENCH_DURABILITY_WINDOW', 16, 1, 1_000)),
    seconds: num('BENCH_DURABILITY_SECONDS', 5, 1, 120),
    warmupSeconds: num('BENCH_DURABILITY_WARMUP_SECONDS', 2, 0, 60),
    rounds: Math.round(num('BENCH_DURABILITY_ROUNDS', 3, 1, 20)),
    bodyBytes: Math.round(num('BENCH_DURABILITY_BODY_BYTES', 100, 80, 60_000)),
    dataDir: resolve(process.env.BENCH_DURABILITY_DATA_DIR || tmpdir()),
    targets,
    profileDir: process.env.BENCH_DURABILITY_PROFILE_DIR ? resolve(process.env.BENCH_DURABILITY_PROFILE_DIR) : null,
    hubNodeArgs: (process.env.BENCH_DURABILITY_HUB_NODE_ARGS ?? '').split(' ').filter(Boolean),
  }
}

function log (message: string): void {
  process.stderr.write(`[bench:durability] ${message}\n`)
}

const sleep = (ms: number): Promise<void> => new Promise(resolve => setTimeout(resolve, ms))

/**
 * User and system CPU seconds of a process (all its threads), and of its main thread alone
 * (/proc/PID/task/PID/stat): what runs off the main thread is libuv's pool (the WAL's fsync
 * for the durable persistence) and V8's helper threads; system time is the kernel's work for
 * the process (socket reads and writes, the fsync).
 */
function cpuTimes (pid: number): { user: number, system: number, mainUser: number, mainSystem: number } {
  const ticks = ticksPerSecond()
  const read = (file: string): [number, number] => {
    const stat = readFileSync(file, 'utf8')
    // The command name may hold spaces and parentheses: count fields after the last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    return [Number(fields[11]) / ticks, Number(fields[12]) / ticks]
  }
  const [user, system] = read(`/proc/${pid}/stat`)
  const [mainUser, mainSystem] = read(`/proc/${pid}/task/${pid}/stat`)
  return { user, system, mainUser, mainSystem }
}

type CpuTimes = ReturnType<typeof cpuTimes>

function cpuDelta (before: CpuTimes, after: CpuTimes): CpuTimes {
  return { user: after.user - before.user, system: after.system - before.system, mainUser: after.mainUser - before.mainUser, mainSystem: after.mainSystem - before.mainSystem }
}

// ---------------------------------------------------------------------------------------
// Hub processes.

/**
 * Starts bench/servers/hub-server.ts with the given BENCH_HUB_* settings. The child takes
 * its environment from this process's at spawn, which startNodeBroker does before its first
 * await, so the settings are put in place only around that call.
 */
function startHub (name: string, env: Record<string, string>, nodeArgs: string[]): Promise<BrokerProcess> {
  const saved = Object.fromEntries(Object.keys(env).map(key => [key, process.env[key]]))
  Object.assign(process.env, env)
  try {
    return startNodeBroker(name, 'hub-server.ts', nodeArgs)
  } finally {
    for (const [key, value] of Object.entries(saved)) {
      if (value === undefined) delete process.env[key]
      else process.env[key] = value
    }
  }
}

/** The durable persistence's group-commit totals, from the gauge hub-server.ts adds to /metrics. */
interface CommitTotals { commits: number, operations: number, commitMs: number, syncs: number, syncMs: number }

async function commitTotals (hub: BrokerProcess): Promise<CommitTotals | null> {
  const res = await fetch(`http://127.0.0.1:${Number(hub.info.httpPort)}/metrics`, { signal: AbortSignal.timeout(10_000) })
  const text = await res.text()
  const totals: Record<string, number> = {}
  for (const match of text.matchAll(/^bench_broker_commit\{stat="(\w+)"\} (\S+)$/gm)) totals[match[1]] = Number(match[2])
  if (totals.commits === undefined) return null
  return { commits: totals.commits, operations: totals.operations, commitMs: totals.commitMs, syncs: totals.syncs, syncMs: totals.syncMs }
}

// ---------------------------------------------------------------------------------------
// The load: devices → hub(s) → one persistent-session service, QoS 1 throughout.

/**
 * A closed loop of QoS 1 publishes. A device's message is outstanding until both its PUBACK
 * has come and the service has its bridge record, so neither the devices' unacknowledged
 * publishes nor the service's backlog can grow past the window.
 */
class Qos1Load {
  readonly devices: number
  readonly #deviceClients: MqttClient[]
  readonly #service: MqttClient
  readonly #topics: string[]
  readonly #srcs: string[]
  readonly #pad: string
  readonly #idPrefix = randomBytes(8)
  #counter = 0
  readonly #window: number
  readonly sent: Float64Array
  readonly acked: Float64Array
  readonly delivered: Float64Array
  /** Credits given back after a stall (messages written off as outstanding for ever). */
  readonly #forgiven: Float64Array
  #running = false
  #measuring = false
  windowDelivered = 0
  windowAcked = 0
  latencies = new LatencyRecorder(1_000_000)
  stalls = 0
  publishErrors = 0
  #lastProgress = performance.now()
  #watchdog: NodeJS.Timeout | null = null

  private constructor (deviceClients: MqttClient[], service: MqttClient, devices: BenchPrincipal[], window: number, bodyBytes: number) {
    this.devices = devices.length
    this.#deviceClients = deviceClients
    this.#service = service
    this.#topics = devices.map(d => `mn/v1/d/${d.id}/up`)
    this.#srcs = devices.map(d => d.id)
    this.#pad = bodyPadding(bodyBytes)
    this.#window = window
    this.sent = new Float64Array(devices.length)
    this.acked = new Float64Array(devices.length)
    this.delivered = new Float64Array(devices.length)
    this.#forgiven = new Float64Array(devices.length)
    const indexOf = new Map(devices.map((d, i) => [d.id, i]))
    service.on('message', (_topic, payload) => {
      const record = decodeBridgeRecord(payload)
      const device = indexOf.get(record.src)
      const body = record.body as { t?: unknown } | undefined
      if (device === undefined || typeof body?.t !== 'number') return
      this.delivered[device] += 1
      this.#lastProgress = performance.now()
      if (this.#measuring) {
        this.windowDelivered += 1
        this.latencies.record(nowMs() - body.t)
      }
      this.#fill(device)
    })
  }

  /** Connects the service (persistent session, QoS 1 on the bridge) to servicePort, and device i to devicePorts[i % n]. */
  static async open (options: { servicePort: number, devicePorts: number[], service: BenchPrincipal, devices: BenchPrincipal[], window: number, bodyBytes: number }): Promise<Qos1Load> {
    const clients: MqttClient[] = []
    try {
      const service = await connectMqtt(options.servicePort, { clientId: options.service.id, username: options.service.id, password: connectPassword(options.service), clean: false })
      clients.push(service)
      const granted = await service.subscribeAsync('mn/v1/bridge/#', { qos: 1 })
      if (granted[0]?.qos !== 1) throw new Error(`the service's QoS 1 subscription was granted ${JSON.stringify(granted)}`)
      const deviceClients: MqttClient[] = []
      for (const [i, device] of options.devices.entries()) {
        const port = options.devicePorts[i % options.devicePorts.length]
        const client = await connectMqtt(port, { clientId: device.id, username: device.id, password: connectPassword(device) })
        clients.push(client)
        deviceClients.push(client)
      }
      return new Qos1Load(deviceClients, service, options.devices, options.window, options.bodyBytes)
    } catch (err) {
      await Promise.all(clients.map(c => c.endAsync(true).catch(() => {})))
      throw err
    }
  }

  #send (device: number): void {
    const id = Buffer.allocUnsafe(16)
    this.#idPrefix.copy(id, 0)
    id.writeDoubleBE(this.#counter++, 8)
    const envelope = encodeEnvelope({ type: 1, src: this.#srcs[device], id, body: telemetryBody(nowMs(), this.#pad) })
    this.sent[device] += 1
    this.#deviceClients[device].publish(this.#topics[device], Buffer.from(envelope), { qos: 1 }, err => {
      if (err) {
        this.publishErrors += 1
        return
      }
      this.acked[device] += 1
      this.#lastProgress = performance.now()
      if (this.#measuring) this.windowAcked += 1
      this.#fill(device)
    })
  }

  #fill (device: number): void {
    while (this.#running) {
      const settled = Math.min(this.acked[device], this.delivered[device]) + this.#forgiven[device]
      if (this.sent[device] - settled >= this.#window) return
      this.#send(device)
    }
  }

  /** Starts (or restarts) the loop with fresh counters. */
  start (): void {
    this.windowDelivered = 0
    this.windowAcked = 0
    this.latencies = new LatencyRecorder(1_000_000)
    this.stalls = 0
    this.publishErrors = 0
    this.#running = true
    this.#lastProgress = performance.now()
    this.#watchdog = setInterval(() => {
      if (!this.#running || performance.now() - this.#lastProgress < STALL_MS) return
      // Nothing moved: give every outstanding credit back so that the loop goes on, and
      // count it; the round's lost/extra figures then show what went missing.
      this.stalls += 1
      for (let d = 0; d < this.devices; d++) this.#forgiven[d] = this.sent[d] - Math.min(this.acked[d], this.delivered[d])
      this.#lastProgress = performance.now()
      for (let d = 0; d < this.devices; d++) this.#fill(d)
    }, 250)
    for (let d = 0; d < this.devices; d++) this.#fill(d)
  }

  set measuring (on: boolean) {
    this.#measuring = on
  }

  /** Stops sending and waits (up to 5 s) for what is outstanding to be acknowledged and delivered. */
  async stop (): Promise<void> {
    this.#running = false
    if (this.#watchdog) clearInterval(this.#watchdog)
    this.#watchdog = null
    for (let waited = 0; waited < 5_000 && !this.#settled(); waited += 20) await sleep(20)
  }

  #settled (): boolean {
    const sum = (a: Float64Array): number => a.reduce((x, y) => x + y, 0)
    return sum(this.acked) + this.publishErrors >= sum(this.sent) && sum(this.delivered) >= sum(this.sent)
  }

  totals (): { sent: number, acked: number, delivered: number } {
    const sum = (a: Float64Array): number => a.reduce((x, y) => x + y, 0)
    return { sent: sum(this.sent), acked: sum(this.acked), delivered: sum(this.delivered) }
  }

  async close (): Promise<void> {
    this.#running = false
    if (this.#watchdog) clearInterval(this.#watchdog)
    await Promise.all([...this.#deviceClients, this.#service].map(c => c.endAsync(true).catch(() => {})))
  }
}

// ---------------------------------------------------------------------------------------
// Targets, rounds and meters.

interface Target {
  key: TargetKey
  hubs: BrokerProcess[]
  redis: RedisServer | null
  load: Qos1Load
}

interface RoundResult {
  key: TargetKey
  round: number
  /** Bridge records the service received per second in the measured window. */
  rate: number
  /** PUBACKs the devices received per second in the same window. */
  ackRate: number
  p50: number
  p99: number
  /** Every hub process's CPU (user + system) summed, per delivered message, µs. */
  hubCpuUs: number
  /** Of it: the main threads' (the event loops'), and the kernel's (system time, all threads). */
  hubMainUs: number
  hubSystemUs: number
  /** Each hub process's CPU use, in cores. */
  hubCores: number[]
  redisCpuUs: number | null
  redisCores: number | null
  generatorCores: number
  /** CPU used by everything else on the machine (other workloads), in cores. */
  otherCores: number
  wallSeconds: number
  delivered: number
  /** After the drain (at most 5 s): sent and not delivered, deliveries beyond what was sent (QoS 1 duplicates), sent and not acknowledged. */
  lost: number
  extra: number
  unacked: number
  stalls: number
  publishErrors: number
  commit: CommitTotals | null
  redisCommands: Map<string, { calls: number, usec: number }> | null
}

function diffCommit (before: CommitTotals | null, after: CommitTotals | null): CommitTotals | null {
  if (before === null || after === null) return null
  return {
    commits: after.commits - before.commits,
    operations: after.operations - before.operations,
    commitMs: after.commitMs - before.commitMs,
    syncs: after.syncs - before.syncs,
    syncMs: after.syncMs - before.syncMs,
  }
}

function diffCommands (before: Map<string, { calls: number, usec: number }>, after: Map<string, { calls: number, usec: number }>): Map<string, { calls: number, usec: number }> {
  const out = new Map<string, { calls: number, usec: number }>()
  for (const [name, a] of after) {
    // The bench's own INFO calls are not the hubs' load.
    if (name === 'info' || name === 'config') continue
    const b = before.get(name) ?? { calls: 0, usec: 0 }
    if (a.calls > b.calls) out.set(name, { calls: a.calls - b.calls, usec: a.usec - b.usec })
  }
  return out
}

async function runRound (target: Target, knobs: Knobs, round: number): Promise<RoundResult> {
  const { load, hubs, redis } = target
  const before0 = load.totals()
  load.start()
  try {
    await sleep(knobs.warmupSeconds * 1000)
    // Counters read over HTTP or from Redis first, then the CPU meters: the reads are not
    // part of the window.
    const commit0 = target.key === 'durable' ? await commitTotals(hubs[0]) : null
    const commands0 = redis ? await commandStats(redis.admin) : null
    const hubCpu0 = hubs.map(h => cpuTimes(h.pid))
    const redisCpu0 = redis ? cpuTimes(redis.pid) : null
    const self0 = process.cpuUsage()
    const machine0: MachineCpu = machineCpu()
    const delivered0 = load.windowDelivered
    const acked0 = load.windowAcked
    const t0 = performance.now()
    load.measuring = true
    await sleep(knobs.seconds * 1000)
    load.measuring = false
    const wallSeconds = (performance.now() - t0) / 1000
    const hubCpu = hubs.map((h, i) => cpuDelta(hubCpu0[i], cpuTimes(h.pid)))
    const hubSeconds = hubCpu.map(c => c.user + c.system)
    const redisCpu = redis && redisCpu0 ? cpuDelta(redisCpu0, cpuTimes(redis.pid)) : null
    const redisSeconds = redisCpu ? redisCpu.user + redisCpu.system : null
    const self = process.cpuUsage(self0)
    const busyCores = machineBusyFraction(machine0, machineCpu()) * availableParallelism()
    const delivered = load.windowDelivered - delivered0
    const acked = load.windowAcked - acked0
    const commit = diffCommit(commit0, target.key === 'durable' ? await commitTotals(hubs[0]) : null)
    const commands = redis && commands0 ? diffCommands(commands0, await commandStats(redis.admin)) : null
    await load.stop()
    const after = load.totals()
    const sent = after.sent - before0.sent
    const got = after.delivered - before0.delivered
    const acks = after.acked - before0.acked
    const [p50, p99] = load.latencies.percentiles([50, 99])
    const hubTotal = hubSeconds.reduce((a, b) => a + b, 0)
    const generatorSeconds = (self.user + self.system) / 1e6
    return {
      key: target.key,
      round,
      rate: delivered / wallSeconds,
      ackRate: acked / wallSeconds,
      p50,
      p99,
      hubCpuUs: delivered > 0 ? hubTotal / delivered * 1e6 : NaN,
      hubMainUs: hubCpu.reduce((a, c) => a + c.mainUser + c.mainSystem, 0) / delivered * 1e6,
      hubSystemUs: hubCpu.reduce((a, c) => a + c.system, 0) / delivered * 1e6,
      hubCores: hubSeconds.map(s => s / wallSeconds),
      redisCpuUs: redisSeconds === null ? null : redisSeconds / delivered * 1e6,
      redisCores: redisSeconds === null ? null : redisSeconds / wallSeconds,
      generatorCores: generatorSeconds / wallSeconds,
      otherCores: Math.max(0, busyCores - (hubTotal + (redisSeconds ?? 0) + generatorSeconds) / wallSeconds),
      wallSeconds,
      delivered,
      lost: Math.max(0, sent - got),
      extra: Math.max(0, got - sent),
      unacked: Math.max(0, sent - acks),
      stalls: load.stalls,
      publishErrors: load.publishErrors,
      commit,
      redisCommands: commands,
    }
  } finally {
    await load.stop()
  }
}

function roundLine (r: RoundResult): string {
  const hubCores = r.hubCores.map(c => dec(c, 2)).join('+')
  const redis = r.redisCores === null ? '' : `, Redis ${dec(r.redisCpuUs, 1)} µs/msg on ${dec(r.redisCores, 2)} cores`
  const trouble = [
    r.lost > 0 ? `${int(r.lost)} not delivered` : '',
    r.extra > 0 ? `${int(r.extra)} duplicates` : '',
    r.unacked > 0 ? `${int(r.unacked)} unacknowledged` : '',
    r.stalls > 0 ? `${r.stalls} stalls` : '',
    r.publishErrors > 0 ? `${r.publishErrors} publish errors` : '',
  ].filter(Boolean).join(', ')
  return `round ${r.round} ${r.key}: ${int(r.rate)} msg/s delivered, ${int(r.ackRate)} acked; hub ${dec(r.hubCpuUs, 1)} µs/msg ` +
    `(main threads ${dec(r.hubMainUs, 1)}, system ${dec(r.hubSystemUs, 1)}) on ${hubCores} cores${redis}; ` +
    `generator ${dec(r.generatorCores, 2)} cores, other processes ${dec(r.otherCores, 2)} cores; p50/p99 ${dec(r.p50, 1)}/${dec(r.p99, 1)} ms${trouble ? `; ${trouble}` : ''}`
}

// ---------------------------------------------------------------------------------------
// The machine and the disk.


// ---------------------------------------------------------------------------------------
// The report.

function summarize (knobs: Knobs, results: Map<TargetKey, RoundResult[]>): string {
  const out: string[] = []
  const med = (rounds: RoundResult[], pick: (r: RoundResult) => number | null): number => median(rounds.map(pick).filter((v): v is number => v !== null && Number.isFinite(v)))
  const memory = results.get('memory') ?? []
  const baseRate = med(memory, r => r.rate)
  const baseCpu = med(memory, r => r.hubCpuUs)
  const rows = [...results].map(([key, rounds]) => {
    const rates = rounds.map(r => r.rate)
    const redisCores = med(rounds, r => r.redisCores)
    return [
      LABELS[key],
      `${int(med(rounds, r => r.rate))} (${int(Math.min(...rates))}–${int(Math.max(...rates))})`,
      dec(med(rounds, r => r.rate) / baseRate, 2),
      int(med(rounds, r => r.ackRate)),
      dec(med(rounds, r => r.hubCpuUs), 1),
      dec(med(rounds, r => r.hubCpuUs) / baseCpu, 2),
      `${dec(med(rounds, r => r.hubMainUs), 1)} / ${dec(med(rounds, r => r.hubSystemUs), 1)}`,
      key.startsWith('cluster') ? `${dec(med(rounds, r => r.redisCpuUs), 1)} (${dec(redisCores, 2)} cores)` : '–',
      `${dec(med(rounds, r => r.p50), 1)} / ${dec(med(rounds, r => r.p99), 1)}`,
      dec(med(rounds, r => r.hubCores.reduce((a, b) => a + b, 0)), 2),
      dec(med(rounds, r => r.generatorCores), 2),
      dec(med(rounds, r => r.otherCores), 2),
    ]
  })
  out.push(table(
    ['target', 'delivered msg/s, median (range)', '÷ (a)', 'device-acked msg/s', 'hub CPU µs/msg (all processes)', '÷ (a)', 'of it: main threads / system', 'Redis CPU µs/msg', 'p50 / p99 ms', 'hub cores', 'generator cores', 'other processes, cores'],
    rows,
  ))
  const durable = results.get('durable')
  if (durable && memory.length > 0) {
    const ratio = med(durable, r => r.rate) / baseRate
    out.push(`\n(b) / (a) = ${dec(ratio, 2)} by delivered rate (the aim: ≥ 0.60: ${ratio >= 0.6 ? 'met' : 'not met'}); by hub CPU per message ${dec(baseCpu / med(durable, r => r.hubCpuUs), 2)}.`)
  }

  const troubled = [...results.values()].flat().filter(r => r.lost > 0 || r.extra > 0 || r.unacked > 0 || r.stalls > 0 || r.publishErrors > 0)
  out.push(troubled.length === 0
    ? 'In every round, after its drain, the service had received as many records as the devices had sent and the devices had a PUBACK for each: nothing missing, nothing twice, no stall.'
    : `Rounds with missing, duplicate, unacknowledged or stalled messages: ${troubled.map(r => `round ${r.round} ${r.key} (not delivered ${r.lost}, duplicates ${r.extra}, unacknowledged ${r.unacked}, stalls ${r.stalls}, publish errors ${r.publishErrors})`).join('; ')}.`)

  if (durable && durable.some(r => r.commit)) {
    const per = (pick: (r: RoundResult, c: CommitTotals) => number): number => med(durable.filter(r => r.commit), r => pick(r, r.commit!))
    out.push('\n### Where (b) spends it: the durable persistence\'s group commits (medians over rounds)\n')
    out.push(table(['figure', 'value'], [
      ['persistence operations per delivered message', dec(per((r, c) => c.operations / r.delivered), 2)],
      ['messages per commit (one commit per event-loop turn with writes)', dec(per((r, c) => r.delivered / c.commits), 1)],
      ['COMMIT on the main thread, µs per message', dec(per((r, c) => c.commitMs * 1000 / r.delivered), 1)],
      ['COMMIT on the main thread, µs per commit', dec(per((_r, c) => c.commitMs * 1000 / c.commits), 0)],
      ['WAL fsyncs per second (off the main thread)', int(per((r, c) => c.syncs / r.wallSeconds))],
      ['messages per fsync', dec(per((r, c) => r.delivered / c.syncs), 1)],
      ['fsync wall time, mean ms', dec(per((_r, c) => c.syncMs / c.syncs), 2)],
      ['share of the window an fsync was running', `${Math.round(per((r, c) => c.syncMs / 1000 / r.wallSeconds) * 100)} %`],
    ]))
  }

  for (const key of ['cluster', 'cluster-aof'] as const) {
    const rounds = results.get(key)?.filter(r => r.redisCommands)
    if (!rounds?.length) continue
    const names = [...new Set(rounds.flatMap(r => [...r.redisCommands!.keys()]))]
    const rowsByCalls = names.map(name => ({
      name,
      calls: med(rounds, r => (r.redisCommands!.get(name)?.calls ?? 0) / r.delivered),
      usec: med(rounds, r => (r.redisCommands!.get(name)?.usec ?? 0) / r.delivered),
    })).filter(c => c.calls >= 0.005).sort((x, y) => y.calls - x.calls)
    const total = med(rounds, r => [...r.redisCommands!.values()].reduce((a, c) => a + c.calls, 0) / r.delivered)
    const totalUs = med(rounds, r => [...r.redisCommands!.values()].reduce((a, c) => a + c.usec, 0) / r.delivered)
    out.push(`\n### Where ${key === 'cluster' ? '(c)' : '(d)'} spends it: Redis commands per delivered message (INFO commandstats, medians over rounds)\n`)
    out.push(table(['command', 'calls per message', 'µs inside Redis per message'], [
      ...rowsByCalls.map(c => [c.name, dec(c.calls, 2), dec(c.usec, 2)]),
      ['all', dec(total, 2), dec(totalUs, 2)],
    ]))
  }

  out.push('\n### Rounds\n')
  out.push([...results.values()].flat().sort((x, y) => x.round - y.round || TARGET_KEYS.indexOf(x.key) - TARGET_KEYS.indexOf(y.key)).map(roundLine).join('\n'))
  return out.join('\n')
}

// ---------------------------------------------------------------------------------------

async function startTargets (knobs: Knobs, root: string): Promise<Target[]> {
  const targets: Target[] = []
  const enrol = async (hub: BrokerProcess): Promise<{ devices: BenchPrincipal[], service: BenchPrincipal }> => {
    const admin = { httpPort: Number(hub.info.httpPort), adminToken: String(hub.info.adminToken) }
    const devices = await enrolMany(admin, 'device', knobs.devices)
    const [service] = await enrolMany(admin, 'service', 1)
    return { devices, service }
  }
  const single = async (key: 'memory' | 'durable'): Promise<Target> => {
    const dataDir = join(root, key)
    mkdirSync(dataDir)
    const hub = await startHub(`hub ${key}`, { BENCH_HUB_PERSISTENCE: key, BENCH_HUB_DATA_DIR: dataDir }, knobs.hubNodeArgs)
    const { devices, service } = await enrol(hub)
    const load = await Qos1Load.open({ servicePort: hub.mqttPort, devicePorts: [hub.mqttPort], service, devices, window: knobs.window, bodyBytes: knobs.bodyBytes })
    return { key, hubs: [hub], redis: null, load }
  }
  for (const key of ['memory', 'durable'] as const) {
    if (knobs.targets.includes(key)) targets.push(await single(key))
  }
  const clusterKeys = knobs.targets.filter(k => k.startsWith('cluster'))
  if (clusterKeys.length > 0) {
    const redisDir = join(root, 'redis')
    mkdirSync(redisDir)
    const redis = await startRedisServer(redisDir)
    const dataDir = join(root, 'cluster')
    mkdirSync(dataDir)
    const env = { BENCH_HUB_REDIS_URL: redis.url, BENCH_HUB_DATA_DIR: dataDir }
    // The first process creates the database, the admin token and the node key; then the others.
    const first = await startHub('hub cluster 1', env, knobs.hubNodeArgs)
    const others = await Promise.all(Array.from({ length: CLUSTER_PROCESSES - 1 }, (_, i) => startHub(`hub cluster ${i + 2}`, env, knobs.hubNodeArgs)))
    const hubs = [first, ...others]
    // (c) and (d) run on the same processes, Redis, devices and service (AOF switched on
    // for (d)'s rounds): a second service on the bridge would receive, and cost, both.
    const { devices, service } = await enrol(first)
    // The service on the first process, devices round robin over all three: most records
    // cross processes through Redis.
    const load = await Qos1Load.open({ servicePort: first.mqttPort, devicePorts: hubs.map(h => h.mqttPort), service, devices, window: knobs.window, bodyBytes: knobs.bodyBytes })
    for (const key of clusterKeys) targets.push({ key, hubs, redis, load })
  }
  return targets
}


async function main (): Promise<void> {
  const knobs = readKnobs()
  const started = performance.now()
  mkdirSync(knobs.dataDir, { recursive: true })
  const root = makeRunDir(knobs.dataDir, 'metanode-durability-')
  try {
    const cpuModel = /^model name\s*:\s*(.+)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1] ?? 'unknown CPU'
    const idle0 = machineCpu()
    await sleep(1_000)
    const background = machineBusyFraction(idle0, machineCpu()) * availableParallelism()
    const facts = [
      `machine: ${availableParallelism()} cores (nproc), ${cpuModel}; Node ${process.version}; aedes ${packageVersion('aedes')}, mqtt.js ${packageVersion('mqtt')}, better-sqlite3 ${packageVersion('better-sqlite3')}` +
        (knobs.targets.some(k => k.startsWith('cluster')) ? `, redis-server ${redisServerVersion()}, ioredis ${packageVersion('ioredis')}, aedes-persistence-redis ${packageVersion('aedes-persistence-redis')}, mqemitter-redis ${packageVersion('mqemitter-redis')}` : ''),
      `data directories (broker.db, metanode.db${knobs.targets.some(k => k.startsWith('cluster')) ? ', Redis\'s files' : ''}) under ${root}, on ${diskOf(root)}`,
      `background load before the run: ${dec(background, 2)} cores busy${background > 0.3 ? ' (the machine is not quiet: expect noisy figures)' : ''}`,
    ]
    for (const fact of facts) log(fact)
    log(`starting the hub processes: ${knobs.targets.join(', ')}`)
    const targets = await startTargets(knobs, root)
    const clusterRedis = targets.find(t => t.redis)?.redis ?? null

    const runTarget = async (target: Target, round: number, roundKnobs = knobs): Promise<RoundResult> => {
      // (d) is (c) with Redis's AOF on and fsynced at every write; off again for the others.
      if (target.redis) await setAppendFsyncAlways(target.redis.admin, target.key === 'cluster-aof')
      return runRound(target, roundKnobs, round)
    }

    // A first, shorter, unrecorded round each: JIT, the files' first pages, Redis's connections.
    for (const target of targets) {
      log(`warming up ${target.key}`)
      await runTarget(target, 0, { ...knobs, seconds: 1 })
    }
    const results = new Map<TargetKey, RoundResult[]>(targets.map(t => [t.key, []]))
    for (let round = 1; round <= knobs.rounds; round++) {
      for (const target of targets) {
        const result = await runTarget(target, round)
        results.get(target.key)!.push(result)
        log(roundLine(result))
      }
    }

    if (knobs.profileDir) {
      mkdirSync(knobs.profileDir, { recursive: true })
      for (const target of targets) {
        log(`profiling ${target.key}`)
        // Every hub process of the target at once, over one more (unrecorded) round.
        const profiled = target.hubs.reduceRight<() => Promise<RoundResult>>((inner, hub, i) =>
          () => hub.profile(join(knobs.profileDir!, `durability-${target.key}-hub${i + 1}.cpuprofile`), inner), () => runTarget(target, 0))
        log(roundLine(await profiled()))
      }
    }
    if (clusterRedis) await setAppendFsyncAlways(clusterRedis.admin, false)
    await Promise.all([...new Set(targets.map(t => t.load))].map(load => load.close()))

    console.log('# Metanode durability and cluster benchmark\n')
    console.log(`${facts.join('; ')}.\n`)
    console.log(`QoS 1 telemetry: ${knobs.devices} devices → 1 service (persistent session, clean: false, QoS 1 on mn/v1/bridge/#), unsigned StatusUpdate envelopes with ${knobs.bodyBytes}-byte bodies; ` +
      `each device keeps ${knobs.window} messages outstanding; ${knobs.rounds} rounds of ${knobs.seconds} s measured after ${knobs.warmupSeconds} s warm-up, targets alternating; medians. ` +
      'A message counts when the service has its bridge record. The load generator (mqtt.js) runs in the bench process on the same cores as the hubs and Redis. ' +
      (clusterRedis ? `Cluster: ${CLUSTER_PROCESSES} hub processes sharing one data directory and one private redis-server (started with --save '' --appendonly no; (d) turns on appendonly with appendfsync always for its rounds), the service on the first process, devices round robin over all three.\n` : '\n'))
    console.log(summarize(knobs, results))
    console.log(`\nTotal run time: ${dec((performance.now() - started) / 1000, 0)} s.`)
  } finally {
    await stopAllChildren()
    await stopAllRedisServers()
    removeRunDir()
  }
}

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    log(`${signal}: stopping the hubs and Redis`)
    // The hubs first: a hub whose Redis goes away while it closes dies of the closed connection.
    stopAllChildren().then(() => stopAllRedisServers()).finally(() => {
      removeRunDir()
      process.exit(130)
    })
  })
}

main().catch(async err => {
  console.error(err)
  await stopAllChildren()
  await stopAllRedisServers()
  removeRunDir()
  process.exitCode = 1
})
