/**
 * `npm run bench`: the hub against plain Aedes (and Mosquitto when installed), side by side
 * on this machine, in one run. Each broker runs in its own child process so that its CPU
 * time and memory can be read from /proc; the load generator (devices and subscriber, real
 * mqtt.js clients on loopback) runs here and shares the same cores, which the output says.
 *
 * Knobs (environment, all bounded): BENCH_DEVICES, BENCH_SECONDS, BENCH_WARMUP_SECONDS,
 * BENCH_WINDOW, BENCH_CONNECTS, BENCH_CONNECT_PARALLEL, BENCH_IDLE, BENCH_QOS,
 * BENCH_BODY_BYTES, BENCH_MOSQUITTO=0 (skip it), BENCH_HUB_NODE_ARGS (extra node flags for
 * the hub child, e.g. "--trace-gc"), BENCH_PROFILE_DIR (CPU profiles of the Node brokers,
 * one per phase), BENCH_HUB_ONLY=1 (the hub alone, raw figures, for profiling).
 * docs/performance.md describes the phases and the figures.
 */
import { availableParallelism } from 'node:os'
import { mkdirSync, readFileSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { execFileSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { findMosquitto, startMosquitto, startNodeBroker, stopAllChildren, type BrokerProcess } from './lib/children.js'
import { encodeConnect, encodeSubscribe } from './lib/raw-mqtt.js'
import { measureIdleMemory, runConnectRate, type IdleClient } from './lib/connections.js'
import { connectPassword, enrolMany, type BenchPrincipal } from './lib/principals.js'
import { hubFlow, plainFlow } from './lib/flows.js'
import { runFixedRate, runSaturated, type PhaseResult, type PhaseTiming, type TelemetryFlow } from './lib/telemetry.js'
import { int, dec, report, type BrokerResults, type Knobs } from './lib/report.js'
import { machineBusyFraction, machineCpu } from './lib/proc.js'
import { envNumber } from './lib/knobs.js'

function readKnobs (): Knobs {
  const num = envNumber
  const qos = num('BENCH_QOS', 0, 0, 1)
  return {
    devices: Math.round(num('BENCH_DEVICES', 10, 1, 1_000)),
    seconds: num('BENCH_SECONDS', 6, 1, 600),
    warmupSeconds: num('BENCH_WARMUP_SECONDS', 2, 0, 60),
    window: Math.round(num('BENCH_WINDOW', 16, 1, 1_000)),
    connects: Math.round(num('BENCH_CONNECTS', 2_000, 10, 200_000)),
    connectLanes: Math.round(num('BENCH_CONNECT_PARALLEL', 16, 1, 256)),
    idle: Math.round(num('BENCH_IDLE', 1_000, 10, 8_000)),
    qos: qos === 1 ? 1 : 0,
    bodyBytes: Math.round(num('BENCH_BODY_BYTES', 100, 80, 60_000)),
    mosquitto: process.env.BENCH_MOSQUITTO !== '0',
    hubNodeArgs: (process.env.BENCH_HUB_NODE_ARGS ?? '').split(' ').filter(Boolean),
    hubOnly: process.env.BENCH_HUB_ONLY === '1',
    profileDir: process.env.BENCH_PROFILE_DIR ? resolve(process.env.BENCH_PROFILE_DIR) : null,
  }
}

const CONNECT_TIME_LIMIT_MS = 60_000

function log (message: string): void {
  process.stderr.write(`[bench] ${message}\n`)
}

function timing (knobs: Knobs, broker: BrokerProcess): PhaseTiming {
  return { warmupMs: knobs.warmupSeconds * 1000, measureMs: knobs.seconds * 1000, broker }
}

/** Runs one phase, CPU-profiling the broker through it when BENCH_PROFILE_DIR is set. */
function phase<T> (knobs: Knobs, broker: BrokerProcess, name: string, run: () => Promise<T>): Promise<T> {
  if (!knobs.profileDir) return run()
  mkdirSync(knobs.profileDir, { recursive: true })
  const file = join(knobs.profileDir, `${broker.name.replace(/\W+/g, '-').toLowerCase()}-${name}.cpuprofile`)
  return broker.profile(file, run)
}

/** The saturated run, then the fixed-rate run at half the rate it reached. */
async function throughputPair (knobs: Knobs, broker: BrokerProcess, flow: TelemetryFlow, label: string, slug: string): Promise<[PhaseResult, PhaseResult]> {
  try {
    log(`${label}: saturated, ${knobs.devices} devices, window ${knobs.window} each`)
    const saturated = await phase(knobs, broker, `saturated${slug}`, () => runSaturated(flow, timing(knobs, broker), knobs.window))
    log(`${label}: ${int(saturated.rate)} msg/s; fixed rate at half of it`)
    const half = await phase(knobs, broker, `half-rate${slug}`, () => runFixedRate(flow, timing(knobs, broker), Math.max(1, Math.round(saturated.rate / 2))))
    return [saturated, half]
  } finally {
    await flow.close()
  }
}

/** Client ids for the anonymous brokers: one reused id per lane, fresh ids for idle clients. */
function anonymousConnectLanes (knobs: Knobs, warmup: number): Buffer[][] {
  const perLane = Math.ceil((knobs.connects + warmup) / knobs.connectLanes)
  return Array.from({ length: knobs.connectLanes }, (_, lane) => {
    const packet = encodeConnect({ clientId: `bench-churn-${lane}` })
    return Array.from({ length: perLane }, () => packet)
  })
}

function anonymousIdleClients (knobs: Knobs): IdleClient[] {
  return Array.from({ length: knobs.idle }, (_, i) => ({
    connect: encodeConnect({ clientId: `bench-idle-${i}` }),
    subscribe: encodeSubscribe(1, `bench/d/bench-idle-${i}/down`, 1),
  }))
}

function connectWarmup (knobs: Knobs): number {
  return Math.min(500, Math.ceil(knobs.connects / 5))
}

async function benchAnonymous (knobs: Knobs, broker: BrokerProcess, hubRate: number): Promise<BrokerResults> {
  log(`${broker.name}: ${knobs.idle} idle connections`)
  const idle = await measureIdleMemory(broker, anonymousIdleClients(knobs))
  log(`${broker.name}: ${knobs.connects} CONNECT cycles`)
  const warmup = connectWarmup(knobs)
  const connect = await phase(knobs, broker, 'connect', () => runConnectRate(broker, anonymousConnectLanes(knobs, warmup), warmup, CONNECT_TIME_LIMIT_MS))
  const flow = await plainFlow({ port: broker.mqttPort, devices: knobs.devices, qos: knobs.qos, payloadBytes: knobs.bodyBytes })
  const [saturated, half] = await throughputPair(knobs, broker, flow, broker.name, '')
  // CPU per message falls as the rate rises (more packets per read and per write system
  // call), so the hub's figure is also set against this broker's at the same fixed rate:
  // the rate of the hub's unsigned half-rate run.
  const equalFlow = await plainFlow({ port: broker.mqttPort, devices: knobs.devices, qos: knobs.qos, payloadBytes: knobs.bodyBytes })
  try {
    log(`${broker.name}: fixed rate at the hub's unsigned half rate, ${int(hubRate)} msg/s`)
    const equalRate = await phase(knobs, broker, 'equal-rate', () => runFixedRate(equalFlow, timing(knobs, broker), Math.max(1, Math.round(hubRate))))
    return { idle, connect, saturated, half, equalRate }
  } finally {
    await equalFlow.close()
  }
}

async function benchHub (knobs: Knobs, hub: BrokerProcess): Promise<BrokerResults> {
  const admin = { httpPort: Number(hub.info.httpPort), adminToken: String(hub.info.adminToken) }
  const deviceCount = Math.max(knobs.idle, knobs.devices + knobs.connectLanes)
  log(`hub: enrolling ${deviceCount} devices and 1 service over HTTP`)
  const devices = await enrolMany(admin, 'device', deviceCount)
  const [service] = await enrolMany(admin, 'service', 1)

  log(`hub: ${knobs.idle} idle authenticated connections`)
  const idle = await measureIdleMemory(hub, devices.slice(0, knobs.idle).map(d => ({
    connect: encodeConnect({ clientId: d.id, username: d.id, password: connectPassword(d) }),
    subscribe: encodeSubscribe(1, `mn/v1/d/${d.id}/down`, 1),
  })))

  log(`hub: ${knobs.connects} signed CONNECT cycles`)
  const warmup = connectWarmup(knobs)
  const perLane = Math.ceil((knobs.connects + warmup) / knobs.connectLanes)
  // Every CONNECT needs a fresh nonce; signed here, before the clock starts.
  const lanes = devices.slice(knobs.devices, knobs.devices + knobs.connectLanes).map((d: BenchPrincipal) =>
    Array.from({ length: perLane }, () => encodeConnect({ clientId: d.id, username: d.id, password: connectPassword(d) })))
  const connect = await phase(knobs, hub, 'connect', () => runConnectRate(hub, lanes, warmup, CONNECT_TIME_LIMIT_MS))

  const telemetryDevices = devices.slice(0, knobs.devices)
  const unsignedFlow = await hubFlow({ port: hub.mqttPort, devices: telemetryDevices, service, signed: false, qos: knobs.qos, bodyBytes: knobs.bodyBytes })
  const unsignedBytes = unsignedFlow.envelopeBytes
  const [saturated, half] = await throughputPair(knobs, hub, unsignedFlow, 'hub, unsigned', '-unsigned')
  const signedFlow = await hubFlow({ port: hub.mqttPort, devices: telemetryDevices, service, signed: true, qos: knobs.qos, bodyBytes: knobs.bodyBytes })
  const signedBytes = signedFlow.envelopeBytes
  const [signedSaturated, signedHalf] = await throughputPair(knobs, hub, signedFlow, 'hub, signed', '-signed')
  return { idle, connect, saturated, half, signedSaturated, signedHalf, envelopeBytes: { unsigned: unsignedBytes, signed: signedBytes } }
}

async function withBroker<T> (start: () => Promise<BrokerProcess>, run: (broker: BrokerProcess) => Promise<T>): Promise<T> {
  const broker = await start()
  try {
    return await run(broker)
  } finally {
    await broker.stop()
  }
}

function machineFacts (): string[] {
  const cpuModel = /^model name\s*:\s*(.+)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1] ?? 'unknown CPU'
  const version = (pkg: string): string => {
    const file = fileURLToPath(new URL(`../node_modules/${pkg}/package.json`, import.meta.url))
    return (JSON.parse(readFileSync(file, 'utf8')) as { version: string }).version
  }
  return [
    `machine: ${availableParallelism()} cores (nproc), ${cpuModel}; Node ${process.version}; aedes ${version('aedes')}, mqtt.js ${version('mqtt')}`,
  ]
}

function mosquittoVersion (binary: string): string {
  try {
    execFileSync(binary, ['-h'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] })
  } catch (err) {
    // `mosquitto -h` prints its usage and exits 3.
    const out = String((err as { stdout?: string }).stdout ?? '')
    const match = /version (\S+)/.exec(out)
    if (match) return match[1]
  }
  return 'unknown version'
}

async function main (): Promise<void> {
  const knobs = readKnobs()
  const started = performance.now()
  const facts = machineFacts()
  // Other work on the machine skews every figure here: measure it once before starting.
  const idle0 = machineCpu()
  await new Promise(resolve => setTimeout(resolve, 1_000))
  const background = machineBusyFraction(idle0, machineCpu()) * availableParallelism()
  facts.push(`background load before the run: ${dec(background, 2)} cores busy${background > 0.3 ? ' (the machine is not quiet: expect noisy figures)' : ''}`)
  for (const fact of facts) log(fact)

  if (knobs.hubOnly) {
    // Profiling aid: the hub's phases alone, raw figures, no comparison.
    const hub = await withBroker(() => startNodeBroker('hub', 'hub-server.ts', knobs.hubNodeArgs), broker => benchHub(knobs, broker))
    console.log(JSON.stringify(hub, null, 2))
    return
  }
  const hub = await withBroker(() => startNodeBroker('hub', 'hub-server.ts', knobs.hubNodeArgs), broker => benchHub(knobs, broker))
  const plain = await withBroker(() => startNodeBroker('plain Aedes', 'plain-aedes-server.ts'), broker => benchAnonymous(knobs, broker, hub.half.offered!))

  let mosquitto: BrokerResults | string
  const binary = knobs.mosquitto ? findMosquitto() : null
  if (!knobs.mosquitto) {
    mosquitto = 'skipped (BENCH_MOSQUITTO=0)'
  } else if (!binary) {
    mosquitto = 'skipped (not installed: `apt-get install mosquitto` adds it as a reference column)'
  } else {
    facts.push(`mosquitto ${mosquittoVersion(binary)}`)
    mosquitto = await withBroker(() => startMosquitto(binary), broker => benchAnonymous(knobs, broker, hub.half.offered!))
  }

  console.log(`# Metanode benchmark\n\n${facts.join('; ')}\n`)
  console.log(report(knobs, hub, plain, mosquitto))
  console.log(`\nTotal run time: ${dec((performance.now() - started) / 1000, 0)} s.`)
}

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    log(`${signal}: stopping brokers`)
    stopAllChildren().finally(() => process.exit(130))
  })
}

main().then(() => stopAllChildren(), async err => {
  console.error(err)
  await stopAllChildren()
  process.exitCode = 1
})
