/**
 * The results of a run and how they are printed: Markdown tables, so that a run's output
 * can be pasted into docs/performance.md as it is, and the targets judged against them.
 */
import { availableParallelism } from 'node:os'
import type { ConnectResult, IdleMemoryResult } from './connections.js'
import type { PhaseResult } from './telemetry.js'
import type { Qos } from './flows.js'

export function table (header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map(r => (r[i] ?? '').length)))
  const line = (cells: string[]): string => `| ${cells.map((c, i) => (c ?? '').padEnd(widths[i])).join(' | ')} |`
  return [line(header), `|${widths.map(w => '-'.repeat(w + 2)).join('|')}|`, ...rows.map(line)].join('\n')
}

/** Integers with thousands separators; NaN and undefined as a dash. */
export function int (value: number | null | undefined): string {
  return value === null || value === undefined || !Number.isFinite(value) ? '–' : Math.round(value).toLocaleString('en-US')
}

/** A number with `digits` decimals; NaN and undefined as a dash. */
export function dec (value: number | null | undefined, digits = 1): string {
  return value === null || value === undefined || !Number.isFinite(value) ? '–' : value.toFixed(digits)
}

export function pct (value: number | null | undefined): string {
  return value === null || value === undefined || !Number.isFinite(value) ? '–' : `${Math.round(value * 100)} %`
}

export function kib (bytes: number | null | undefined): string {
  return bytes === null || bytes === undefined || !Number.isFinite(bytes) ? '–' : (bytes / 1024).toFixed(1)
}

export interface Knobs {
  devices: number
  seconds: number
  warmupSeconds: number
  window: number
  connects: number
  connectLanes: number
  idle: number
  qos: Qos
  bodyBytes: number
  mosquitto: boolean
  hubNodeArgs: string[]
  hubOnly: boolean
  /** Where per-phase CPU profiles of the Node brokers go, when set. */
  profileDir: string | null
}

/** Everything measured against one broker; the hub also has a signed pair. */
export interface BrokerResults {
  idle: IdleMemoryResult
  connect: ConnectResult
  saturated: PhaseResult
  half: PhaseResult
  signedSaturated?: PhaseResult
  signedHalf?: PhaseResult
  /** Plain brokers: a fixed-rate run at the hub's unsigned half rate, to compare CPU per message at equal load. */
  equalRate?: PhaseResult
  /** Bytes of one hub envelope as published, unsigned and signed. */
  envelopeBytes?: { unsigned: number, signed: number }
}

interface Target {
  name: string
  hub: string
  plain: string
  ratio: string
  goal: string
  met: boolean
}

function targets (hub: BrokerResults, plain: BrokerResults): Target[] {
  const ratio = (a: number, b: number): number => a / b
  const r1 = ratio(hub.saturated.rate, plain.saturated.rate)
  const r2 = ratio(hub.signedSaturated!.rate, plain.saturated.rate)
  const r3 = ratio(hub.connect.rate, plain.connect.rate)
  const r4 = ratio(hub.idle.rssPerConnection, plain.idle.rssPerConnection)
  const r4h = ratio(hub.idle.heapPerConnection!, plain.idle.heapPerConnection!)
  const r5 = ratio(hub.saturated.brokerCpuUs, plain.saturated.brokerCpuUs)
  const r6 = ratio(hub.half.brokerCpuUs, plain.equalRate!.brokerCpuUs)
  return [
    { name: 'delivered msg/s, unsigned envelopes', hub: int(hub.saturated.rate), plain: int(plain.saturated.rate), ratio: dec(r1, 2), goal: 'hub/plain ≥ 0.7', met: r1 >= 0.7 },
    { name: 'delivered msg/s, signed envelopes', hub: int(hub.signedSaturated!.rate), plain: int(plain.saturated.rate), ratio: dec(r2, 2), goal: 'hub/plain ≥ 0.4', met: r2 >= 0.4 },
    { name: 'CONNECTs/s (hub: signature auth; plain: no auth)', hub: int(hub.connect.rate), plain: int(plain.connect.rate), ratio: dec(r3, 2), goal: 'hub/plain ≥ 0.8', met: r3 >= 0.8 },
    { name: 'memory per idle connection, RSS KiB', hub: kib(hub.idle.rssPerConnection), plain: kib(plain.idle.rssPerConnection), ratio: dec(r4, 2), goal: 'hub/plain ≤ 2', met: r4 <= 2 },
    { name: 'memory per idle connection, JS heap+external KiB', hub: kib(hub.idle.heapPerConnection), plain: kib(plain.idle.heapPerConnection), ratio: dec(r4h, 2), goal: 'hub/plain ≤ 2', met: r4h <= 2 },
    { name: 'p99 ms at half the saturated rate, unsigned', hub: dec(hub.half.p99), plain: dec(plain.half.p99), ratio: '', goal: 'hub < 20 ms', met: hub.half.p99 < 20 && hub.half.stalls === 0 },
    { name: 'p99 ms at half the saturated rate, signed', hub: dec(hub.signedHalf!.p99), plain: '', ratio: '', goal: 'hub < 20 ms', met: hub.signedHalf!.p99 < 20 && hub.signedHalf!.stalls === 0 },
    { name: 'broker CPU µs per delivered message, unsigned, each saturated', hub: dec(hub.saturated.brokerCpuUs), plain: dec(plain.saturated.brokerCpuUs), ratio: dec(r5, 2), goal: 'hub/plain ≤ 1.3', met: r5 <= 1.3 },
    { name: `  the same, both at a fixed ${int(hub.half.offered)} msg/s`, hub: dec(hub.half.brokerCpuUs), plain: dec(plain.equalRate!.brokerCpuUs), ratio: dec(r6, 2), goal: 'hub/plain ≤ 1.3', met: r6 <= 1.3 },
  ]
}

export function report (knobs: Knobs, hub: BrokerResults, plain: BrokerResults, mosquitto: BrokerResults | string): string {
  const out: string[] = []
  const cols = ['hub, unsigned', 'hub, signed', 'plain Aedes', 'Mosquitto']
  const m = typeof mosquitto === 'string' ? null : mosquitto
  const skip = typeof mosquitto === 'string' ? 'skipped' : ''
  const row = (name: string, f: (r: BrokerResults, signed: boolean) => string, signedToo = true): string[] => [
    name,
    f(hub, false),
    signedToo ? f(hub, true) : '″',
    f(plain, false),
    m ? f(m, false) : skip,
  ]
  const sat = (r: BrokerResults, signed: boolean): PhaseResult => (signed ? r.signedSaturated : r.saturated)!
  const half = (r: BrokerResults, signed: boolean): PhaseResult => (signed ? r.signedHalf : r.half)!
  // Busy cores that were neither the broker nor the generator: kernel network work not
  // charged to a process, and whatever else runs on the machine.
  const others = (p: PhaseResult): number => p.machineBusy * availableParallelism() - p.brokerCores - p.generatorCores

  out.push('## Targets', '')
  out.push(table(['measure', 'hub', 'plain Aedes', 'ratio', 'target', 'met'],
    targets(hub, plain).map(t => [t.name, t.hub, t.plain, t.ratio, t.goal, t.met ? 'yes' : 'NO'])))
  out.push('', '## Side by side', '')
  out.push(table(['', ...cols], [
    row('saturated: delivered msg/s', (r, s) => int(sat(r, s).rate)),
    row('saturated: p50 latency, ms', (r, s) => dec(sat(r, s).p50, 2)),
    row('saturated: p99 latency, ms', (r, s) => dec(sat(r, s).p99, 2)),
    row('saturated: broker CPU µs/msg', (r, s) => dec(sat(r, s).brokerCpuUs)),
    row('saturated: broker CPU, cores', (r, s) => dec(sat(r, s).brokerCores, 2)),
    row('saturated: generator CPU, cores', (r, s) => dec(sat(r, s).generatorCores, 2)),
    row('saturated: machine busy', (r, s) => pct(sat(r, s).machineBusy)),
    row('saturated: other processes, cores', (r, s) => dec(others(sat(r, s)), 2)),
    row('saturated: lost / watchdog restarts', (r, s) => `${sat(r, s).lost} / ${sat(r, s).stalls}`),
    row('half rate: offered msg/s', (r, s) => int(half(r, s).offered)),
    row('half rate: delivered msg/s', (r, s) => int(half(r, s).rate)),
    row('half rate: p50 latency, ms', (r, s) => dec(half(r, s).p50, 2)),
    row('half rate: p99 latency, ms', (r, s) => dec(half(r, s).p99, 2)),
    row('half rate: broker CPU µs/msg', (r, s) => dec(half(r, s).brokerCpuUs)),
    row('half rate: generator CPU, cores', (r, s) => dec(half(r, s).generatorCores, 2)),
    row('half rate: other processes, cores', (r, s) => dec(others(half(r, s)), 2)),
    row('half rate: broker event-loop delay max, ms', (r, s) => dec(half(r, s).brokerLoop?.maxMs)),
    row('half rate: generator event-loop delay max, ms', (r, s) => dec(half(r, s).generatorLoop.maxMs)),
    row('half rate: lost / rate not held', (r, s) => `${half(r, s).lost} / ${half(r, s).stalls ? 'yes' : 'no'}`),
    row('at the hub\'s half rate: delivered msg/s', r => int(r.equalRate?.rate ?? r.half.rate), false),
    row('at the hub\'s half rate: broker CPU µs/msg', r => dec(r.equalRate?.brokerCpuUs ?? r.half.brokerCpuUs), false),
    row('at the hub\'s half rate: p99 latency, ms', r => dec(r.equalRate?.p99 ?? r.half.p99, 2), false),
    row('CONNECT+DISCONNECT cycles/s', r => int(r.connect.rate), false),
    row('broker CPU µs per CONNECT cycle', r => dec(r.connect.brokerCpuUs, 0), false),
    row('generator CPU during CONNECTs, cores', r => dec(r.connect.generatorCores, 2), false),
    row('refused CONNECTs', r => String(r.connect.refused + r.idle.refused), false),
    row(`idle connections: RSS KiB each (${knobs.idle})`, r => kib(r.idle.rssPerConnection), false),
    row('idle connections: JS heap+external KiB each', r => kib(r.idle.heapPerConnection), false),
  ]))
  out.push('')
  if (typeof mosquitto === 'string') out.push(`Mosquitto: ${mosquitto}.`)
  out.push(
    `Load: ${knobs.devices} devices → 1 subscriber, QoS ${knobs.qos} both ways, TCP_NODELAY on every socket; ` +
      `${knobs.bodyBytes}-byte bodies (hub envelope ${hub.envelopeBytes?.unsigned} B unsigned, ${hub.envelopeBytes?.signed} B signed; ` +
      `plain brokers get ${knobs.bodyBytes}-byte raw payloads). Saturated: each device keeps ≤ ${knobs.window} messages in flight; ` +
      `${knobs.warmupSeconds} s warm-up, ${knobs.seconds} s measured per phase.`,
    `CONNECT: ${knobs.connectLanes} parallel lanes, each one client id reconnecting after the close; hub CONNECTs carry 88-byte signed passwords, signed before the clock starts.`,
    `Idle: ${knobs.idle} connections, each CONNECT + SUBSCRIBE to its own topic, memory read after a full GC in the Node brokers.`,
    'NOTE: the load generator (all devices and the subscriber, one Node process) runs on the same cores as the broker: ' +
      'its CPU use is in the "generator CPU" rows. Broker CPU per message, read from /proc/PID/stat, is the steadier comparison.',
  )
  return out.join('\n')
}
