/**
 * QoS 1 throughput of Aedes with each persistence, side by side in one run: the in-memory
 * aedes-persistence (Aedes's default); our SQLite persistence with its default durability
 * ('fsync': the WAL fsynced off the main thread before a write counts as done), with
 * SQLite's own synchronous = FULL ('sqlite-full', the fsync inside COMMIT) and with no
 * fsync ('os') for reference; and aedes-persistence-level when it is installed.
 *
 * The broker runs in a child process (this file with --broker), one per scenario and round;
 * the load generator (mqtt.js: publishers → one persistent-session QoS 1 subscriber with
 * clean: false, 100-byte payloads) runs in this process, so the broker's CPU time is its own
 * (process.cpuUsage in the child over the measured window) and the generator takes the
 * other core. Rounds alternate the scenarios so that drift on a shared machine hits all.
 *   npm run bench:persistence
 *   BENCH_PERSISTENCE_MESSAGES=20000 BENCH_PERSISTENCE_ROUNDS=3 BENCH_PERSISTENCE_PUBLISHERS=1
 *   BENCH_PERSISTENCE_SCENARIOS=memory,sqlite   (a subset; default all available)
 *   BENCH_PERSISTENCE_CONCURRENCY=100   (Aedes's `concurrency`)
 *   BENCH_PERSISTENCE_PROFILE_DIR=/tmp/prof   (a CPU profile of every broker child)
 */
import { fork, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { mkdtempSync, rmSync } from 'node:fs'
import { createRequire } from 'node:module'
import { createServer, type AddressInfo } from 'node:net'
import { availableParallelism, tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { Aedes } from 'aedes'
import mqtt, { type MqttClient } from 'mqtt'
import { createSqlitePersistence, type SqlitePersistence } from '../broker/persistence/sqlite-persistence.js'

type Scenario = 'memory' | 'sqlite' | 'sqlite-full-inline' | 'sqlite-os' | 'level'

const DURABILITY = { sqlite: 'fsync', 'sqlite-full-inline': 'sqlite-full', 'sqlite-os': 'os' } as const

/** Messages measured per scenario and round. */
const MESSAGES = Number(process.env.BENCH_PERSISTENCE_MESSAGES ?? 20_000)
/** Messages sent before measuring, so that the JIT and the file have warmed up. */
const WARMUP_MESSAGES = Math.min(2_000, MESSAGES)
const ROUNDS = Number(process.env.BENCH_PERSISTENCE_ROUNDS ?? 3)
const PUBLISHERS = Number(process.env.BENCH_PERSISTENCE_PUBLISHERS ?? 1)
/** QoS 1 publishes a publisher keeps awaiting their PUBACK. */
const PUBLISH_WINDOW = 256
const PAYLOAD_BYTES = 100
/** Aedes's `concurrency` (mqemitter's bound on deliveries in progress); Aedes's default is 100. */
const CONCURRENCY = Number(process.env.BENCH_PERSISTENCE_CONCURRENCY ?? 100)
/** Where to write a CPU profile of each broker child (node --cpu-prof), when set. */
const PROFILE_DIR = process.env.BENCH_PERSISTENCE_PROFILE_DIR
/** A phase with no message received for this long has stalled (a lost live delivery), in ms. */
const STALL_MS = 5_000

interface BrokerRequest { type: 'cpu-start' | 'cpu-stop' | 'close' }
/** Commit figures of the SQLite persistence over the measured window. */
interface CommitFigures { commits: number, operations: number, commitMs: number, syncs: number, syncMs: number }
type BrokerReply = { type: 'ready', port: number } | { type: 'cpu-started' } | { type: 'cpu', microseconds: number, commit: CommitFigures | null } | { type: 'closed' }

// ---------------------------------------------------------------------------------------
// The broker child.

async function runBroker (scenario: Scenario, dir: string): Promise<void> {
  let persistence: unknown
  let destroy = async (): Promise<void> => {}
  let commitFigures = (): CommitFigures | null => null
  if (scenario === 'sqlite' || scenario === 'sqlite-full-inline' || scenario === 'sqlite-os') {
    const sqlite: SqlitePersistence = await createSqlitePersistence({ file: join(dir, 'mqtt-state.db'), durability: DURABILITY[scenario] })
    persistence = sqlite
    destroy = () => sqlite.destroy()
    commitFigures = () => ({ ...sqlite.commitStats })
  } else if (scenario === 'level') {
    // The async class itself: the callback wrapper's readiness depends on a setter Aedes 1.x
    // never calls (baselines.md).
    const require = createRequire(import.meta.url)
    const { Level } = require('level') as { Level: new (location: string) => unknown }
    const AsyncLevelPersistence = require('aedes-persistence-level/asyncPersistence.js') as new (db: unknown) => { destroy (): Promise<void> }
    const level = new AsyncLevelPersistence(new Level(join(dir, 'level')))
    persistence = level
    destroy = () => level.destroy()
  }
  const aedes = await Aedes.createBroker({ concurrency: CONCURRENCY, ...(persistence === undefined ? {} : { persistence }) })
  const server = createServer(socket => {
    socket.setNoDelay(true)
    aedes.handle(socket)
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  let cpu0 = process.cpuUsage()
  let commit0 = commitFigures()
  const send = (reply: BrokerReply): void => { process.send?.(reply) }
  process.on('message', (request: BrokerRequest) => {
    if (request.type === 'cpu-start') {
      cpu0 = process.cpuUsage()
      commit0 = commitFigures()
      send({ type: 'cpu-started' })
    } else if (request.type === 'cpu-stop') {
      const used = process.cpuUsage(cpu0)
      const commit1 = commitFigures()
      const commit = commit0 === null || commit1 === null
        ? null
        : {
            commits: commit1.commits - commit0.commits,
            operations: commit1.operations - commit0.operations,
            commitMs: commit1.commitMs - commit0.commitMs,
            syncs: commit1.syncs - commit0.syncs,
            syncMs: commit1.syncMs - commit0.syncMs,
          }
      send({ type: 'cpu', microseconds: used.user + used.system, commit })
    } else if (request.type === 'close') {
      void (async () => {
        await new Promise<void>(resolve => aedes.close(() => resolve()))
        await new Promise<void>(resolve => server.close(() => resolve()))
        // Aedes's close() leaves the persistence open: its owner destroys it.
        await destroy()
        send({ type: 'closed' })
        process.disconnect()
      })()
    }
  })
  send({ type: 'ready', port: (server.address() as AddressInfo).port })
}

// ---------------------------------------------------------------------------------------
// The load generator.

interface RoundResult {
  messagesPerSecond: number
  brokerMicrosecondsPerMessage: number
  duplicates: number
  /** The load generator's (this process's) CPU time over the measured window, as a share of one core. */
  generatorCoreShare: number
  /** Messages a live subscriber never got (the phase stalled without them); 0 when all came. */
  missing: number
  commit: CommitFigures | null
}

class BrokerChild {
  readonly #child: ChildProcess
  readonly #replies: BrokerReply[] = []
  readonly #waiters: Array<(reply: BrokerReply) => void> = []

  constructor (scenario: Scenario, dir: string) {
    this.#child = fork(fileURLToPath(import.meta.url), ['--broker', scenario, dir], {
      execArgv: [...(PROFILE_DIR === undefined ? [] : ['--cpu-prof', `--cpu-prof-dir=${PROFILE_DIR}`, `--cpu-prof-name=broker-${scenario}-${Date.now()}.cpuprofile`]), '--import', 'tsx'],
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    })
    this.#child.on('message', (reply: BrokerReply) => {
      const waiter = this.#waiters.shift()
      if (waiter) waiter(reply)
      else this.#replies.push(reply)
    })
  }

  next (): Promise<BrokerReply> {
    const reply = this.#replies.shift()
    if (reply) return Promise.resolve(reply)
    return new Promise((resolve, reject) => {
      this.#waiters.push(resolve)
      this.#child.once('exit', code => reject(new Error(`broker child exited with ${code}`)))
    })
  }

  async request (type: BrokerRequest['type']): Promise<BrokerReply> {
    this.#child.send({ type })
    return this.next()
  }

  kill (): void {
    if (this.#child.exitCode === null) this.#child.kill('SIGKILL')
  }

  async exited (): Promise<void> {
    if (this.#child.exitCode === null && this.#child.signalCode === null) await once(this.#child, 'exit')
  }
}

async function connect (url: string, clientId: string, clean: boolean): Promise<MqttClient> {
  const client = await mqtt.connectAsync(url, { clientId, clean, reconnectPeriod: 0 })
  // mqtt.js leaves Nagle on; on loopback it holds a publisher's writes until the broker's
  // next reply, which couples the batches the broker reads to its own latency.
  const stream = client.stream as { setNoDelay?: (noDelay: boolean) => void }
  stream.setNoDelay?.(true)
  return client
}

/** Publishes `count` messages numbered from `first`, spread over the publishers, each with a window of PUBACKs outstanding. */
async function publishAll (publishers: MqttClient[], first: number, count: number): Promise<void> {
  let next = first
  const end = first + count
  await Promise.all(publishers.map((publisher, p) => new Promise<void>((resolve, reject) => {
    let inFlight = 0
    const pump = (): void => {
      while (inFlight < PUBLISH_WINDOW && next < end) {
        const payload = Buffer.alloc(PAYLOAD_BYTES, 0x20)
        payload.write(String(next))
        next++
        inFlight++
        publisher.publish(`bench/${p}/up`, payload, { qos: 1 }, err => {
          if (err) return reject(err)
          inFlight--
          pump()
        })
      }
      if (inFlight === 0 && next >= end) resolve()
    }
    pump()
  })))
}

async function runRound (scenario: Scenario): Promise<RoundResult> {
  const dir = mkdtempSync(join(tmpdir(), `bench-persistence-${scenario}-`))
  const broker = new BrokerChild(scenario, dir)
  const clients: MqttClient[] = []
  try {
    const ready = await broker.next()
    if (ready.type !== 'ready') throw new Error(`unexpected reply ${ready.type}`)
    const url = `mqtt://127.0.0.1:${ready.port}`
    const subscriber = await connect(url, 'bench-subscriber', false)
    clients.push(subscriber)
    await subscriber.subscribeAsync('bench/+/up', { qos: 1 })
    const seen = new Uint8Array(WARMUP_MESSAGES + MESSAGES)
    let received = 0
    let duplicates = 0
    let onCount: (() => void) | null = null
    let target = 0
    subscriber.on('message', (_topic, payload) => {
      const n = Number.parseInt(payload.toString('latin1', 0, 12), 10)
      if (seen[n] === 1) duplicates++
      else {
        seen[n] = 1
        received++
      }
      if (received >= target && onCount !== null) onCount()
    })
    // Resolves with the number still missing: 0, or what was left when no message had come
    // for STALL_MS (a live delivery the broker dropped; it stays queued until a reconnect).
    const allReceived = (count: number): Promise<number> => new Promise(resolve => {
      target = count
      let last = received
      const timer = setInterval(() => {
        if (received === last) finish()
        last = received
      }, STALL_MS)
      const finish = (): void => {
        clearInterval(timer)
        onCount = null
        resolve(Math.max(0, count - received))
      }
      onCount = finish
      if (received >= count) finish()
    })
    const publishers = await Promise.all(Array.from({ length: PUBLISHERS }, (_, i) => connect(url, `bench-publisher-${i}`, true)))
    clients.push(...publishers)

    const warmedUp = allReceived(WARMUP_MESSAGES)
    await publishAll(publishers, 0, WARMUP_MESSAGES)
    let missing = await warmedUp

    await broker.request('cpu-start')
    const generatorCpu0 = process.cpuUsage()
    const start = performance.now()
    const done = allReceived(WARMUP_MESSAGES + MESSAGES)
    await publishAll(publishers, WARMUP_MESSAGES, MESSAGES)
    missing = await done
    // A stalled run's time includes the wait: its rate is not reported.
    const elapsedMs = performance.now() - start
    const generatorCpu = process.cpuUsage(generatorCpu0)
    const seconds = missing > 0 ? Number.NaN : elapsedMs / 1000
    const cpu = await broker.request('cpu-stop')
    if (cpu.type !== 'cpu') throw new Error(`unexpected reply ${cpu.type}`)

    await Promise.all(clients.map(client => client.endAsync()))
    clients.length = 0
    await broker.request('close')
    await broker.exited()
    return {
      messagesPerSecond: MESSAGES / seconds,
      brokerMicrosecondsPerMessage: cpu.microseconds / MESSAGES,
      duplicates,
      generatorCoreShare: (generatorCpu.user + generatorCpu.system) / 1000 / elapsedMs,
      missing,
      commit: cpu.commit,
    }
  } finally {
    await Promise.all(clients.map(client => client.endAsync(true)))
    broker.kill()
    rmSync(dir, { recursive: true, force: true })
  }
}

function median (values: number[]): number {
  if (values.length === 0) return Number.NaN
  const sorted = [...values].sort((a, b) => a - b)
  const middle = sorted.length >> 1
  return sorted.length % 2 === 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2
}

function levelInstalled (): boolean {
  try {
    const require = createRequire(import.meta.url)
    require.resolve('level')
    require.resolve('aedes-persistence-level/asyncPersistence.js')
    return true
  } catch {
    return false
  }
}

async function main (): Promise<void> {
  const available: Scenario[] = ['memory', 'sqlite', 'sqlite-full-inline', 'sqlite-os', ...(levelInstalled() ? ['level' as const] : [])]
  const requested = process.env.BENCH_PERSISTENCE_SCENARIOS?.split(',').map(s => s.trim()) ?? available
  const scenarios = available.filter(s => requested.includes(s))
  console.log(`QoS 1, ${PUBLISHERS} publisher(s) → 1 persistent-session subscriber (clean: false), ${PAYLOAD_BYTES}-byte payloads, ` +
    `${MESSAGES.toLocaleString('en-US')} messages per round after ${WARMUP_MESSAGES.toLocaleString('en-US')} warm-up, ${ROUNDS} round(s), ` +
    `publish window ${PUBLISH_WINDOW}, Aedes concurrency ${CONCURRENCY}; ${availableParallelism()} cores; broker in a child process, load generator (mqtt.js) in this one.`)
  if (!levelInstalled()) console.log('aedes-persistence-level is not installed: skipped.')
  const results = new Map<Scenario, RoundResult[]>(scenarios.map(s => [s, []]))
  for (let round = 1; round <= ROUNDS; round++) {
    for (const scenario of scenarios) {
      const result = await runRound(scenario)
      results.get(scenario)!.push(result)
      const commit = result.commit === null
        ? ''
        : `  ${result.commit.commits} commits, ${(result.commit.operations / result.commit.commits).toFixed(1)} ops/commit, ` +
          `${(result.commit.commitMs / result.commit.commits * 1000).toFixed(0)} µs/commit on the main thread` +
          (result.commit.syncs > 0 ? `, ${result.commit.syncs} fsyncs of ${(result.commit.syncMs / result.commit.syncs * 1000).toFixed(0)} µs off it` : '')
      const rate = result.missing > 0 ? `stalled: ${result.missing} live deliveries lost` : `${Math.round(result.messagesPerSecond).toLocaleString('en-US').padStart(7)} msg/s`
      console.log(`round ${round} ${scenario.padEnd(18)} ${rate}  ${result.brokerMicrosecondsPerMessage.toFixed(1).padStart(6)} broker µs/msg, ` +
        `generator ${Math.round(result.generatorCoreShare * 100)} % of a core` +
        `${result.duplicates > 0 ? `  ${result.duplicates} duplicates` : ''}${commit}`)
    }
  }
  const rateOf = (rounds: RoundResult[] | undefined): number => median((rounds ?? []).map(r => r.messagesPerSecond).filter(Number.isFinite))
  const memory = rateOf(results.get('memory'))
  const memoryCpu = median(results.get('memory')?.map(r => r.brokerMicrosecondsPerMessage) ?? [])
  console.log('\n| persistence | msg/s (median) | ÷ in-memory | broker CPU µs/msg (median) | ÷ in-memory | stalled rounds |')
  console.log('|---|---|---|---|---|---|')
  for (const [scenario, rounds] of results) {
    const rate = rateOf(rounds)
    const cpu = median(rounds.map(r => r.brokerMicrosecondsPerMessage))
    const stalled = rounds.filter(r => r.missing > 0).length
    console.log(`| ${scenario} | ${Number.isFinite(rate) ? Math.round(rate).toLocaleString('en-US') : '–'} | ${(rate / memory).toFixed(2)} | ` +
      `${cpu.toFixed(1)} | ${(cpu / memoryCpu).toFixed(2)} | ${stalled} of ${rounds.length} |`)
  }
  const sqlite = results.get('sqlite')
  if (sqlite !== undefined && Number.isFinite(memory)) {
    const ratio = rateOf(sqlite) / memory
    console.log(`\nsqlite (durability 'fsync', the default) / memory = ${ratio.toFixed(2)} (the aim: ≥ 0.60)`)
  }
}

const brokerFlag = process.argv.indexOf('--broker')
if (brokerFlag !== -1) {
  await runBroker(process.argv[brokerFlag + 1] as Scenario, process.argv[brokerFlag + 2])
} else {
  await main()
}
