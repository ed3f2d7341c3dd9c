/**
 * The telemetry load: N devices publish through a broker to one subscriber, all in this
 * process, over real loopback sockets. Two shapes:
 * - saturated: closed loop, each device keeps at most `window` messages in flight (sent,
 *   not yet seen by the subscriber). The broker sets the pace, and with QoS 0 nothing
 *   piles up without bound in any socket buffer;
 * - fixed rate: open loop at a set total rate, the way latency targets are stated.
 * Each message carries its send time; latency is measured where the subscriber gets it.
 */
import { monitorEventLoopDelay } from 'node:perf_hooks'
import { LatencyRecorder } from './stats.js'
import { CpuWindow } from './proc.js'
import type { BrokerProcess, LoopDelay } from './children.js'

/** Wall clock in ms with sub-ms resolution, the unit of the embedded send time. */
export function nowMs (): number {
  return performance.timeOrigin + performance.now()
}

/** Devices, topic and subscriber wired to one broker; see flows.ts. */
export interface TelemetryFlow {
  readonly devices: number
  /** Publishes one message from device `device`, stamped with the current time. */
  send (device: number): void
  /** Called by the subscriber side for each message it receives. */
  onDelivered: (device: number, sentAt: number) => void
  close (): Promise<void>
}

export interface PhaseTiming {
  warmupMs: number
  measureMs: number
  /** The broker: its pid for CPU time from /proc, and its event-loop delay. */
  broker: Pick<BrokerProcess, 'pid' | 'loopDelay'>
}

export interface PhaseResult {
  /** Messages delivered to the subscriber per second during the measured window. */
  rate: number
  /** Fixed rate: the rate offered; null for a saturated run. */
  offered: number | null
  p50: number
  p99: number
  /** Broker CPU (user + system) per delivered message, µs. */
  brokerCpuUs: number
  /** Broker CPU use over the window, in cores. */
  brokerCores: number
  /** This process's CPU use (devices + subscriber), in cores. */
  generatorCores: number
  /** Share of the machine's cores busy over the window. */
  machineBusy: number
  sent: number
  delivered: number
  /** Sent but never delivered after the drain wait. */
  lost: number
  /** Saturated: times the loop had to be restarted because deliveries stopped. Fixed: 1 when the rate could not be held. */
  stalls: number
  /** The broker's event-loop delay over the window (Node brokers). */
  brokerLoop: LoopDelay | null
  /** This process's event-loop delay over the window: a stalled generator delays sends and receipts alike. */
  generatorLoop: LoopDelay
}

/** The meters of one measured window: CPU, and both event loops. */
class Meters {
  readonly #cpu: CpuWindow
  readonly #loop = monitorEventLoopDelay({ resolution: 5 })
  readonly #broker: PhaseTiming['broker']

  private constructor (broker: PhaseTiming['broker']) {
    this.#broker = broker
    this.#cpu = new CpuWindow(broker.pid)
    this.#loop.enable()
  }

  static async open (broker: PhaseTiming['broker']): Promise<Meters> {
    await broker.loopDelay()
    return new Meters(broker)
  }

  async close (): Promise<{ usage: ReturnType<CpuWindow['read']>, brokerLoop: LoopDelay | null, generatorLoop: LoopDelay }> {
    const usage = this.#cpu.read()
    this.#loop.disable()
    const generatorLoop = { p99Ms: this.#loop.percentile(99) / 1e6, maxMs: this.#loop.max / 1e6 }
    return { usage, brokerLoop: await this.#broker.loopDelay(), generatorLoop }
  }
}

const sleep = (ms: number): Promise<void> => new Promise(resolve => setTimeout(resolve, ms))

export async function runSaturated (flow: TelemetryFlow, timing: PhaseTiming, window: number): Promise<PhaseResult> {
  const inflight = new Int32Array(flow.devices)
  const latencies = new LatencyRecorder()
  let sent = 0
  let delivered = 0
  let inWindow = 0
  let running = true
  let measuring = false
  let stalls = 0

  const fill = (device: number): void => {
    while (running && inflight[device] < window) {
      inflight[device] += 1
      sent += 1
      flow.send(device)
    }
  }
  flow.onDelivered = (device, sentAt) => {
    delivered += 1
    if (inflight[device] > 0) inflight[device] -= 1
    if (measuring) {
      inWindow += 1
      latencies.record(nowMs() - sentAt)
    }
    fill(device)
  }

  // A lost message (a broker may drop QoS 0 under pressure) would hold its credit for
  // ever; when nothing has arrived for a second, the credits are given back.
  let lastDelivered = 0
  let quietSince = performance.now()
  const watchdog = setInterval(() => {
    if (delivered !== lastDelivered) {
      lastDelivered = delivered
      quietSince = performance.now()
    } else if (running && performance.now() - quietSince > 1_000) {
      stalls += 1
      inflight.fill(0)
      quietSince = performance.now()
      for (let d = 0; d < flow.devices; d++) fill(d)
    }
  }, 100)

  try {
    for (let d = 0; d < flow.devices; d++) fill(d)
    await sleep(timing.warmupMs)
    const meters = await Meters.open(timing.broker)
    measuring = true
    await sleep(timing.measureMs)
    measuring = false
    const measured = await meters.close()
    running = false
    await drain(() => delivered >= sent)
    return summarize(measured, null, inWindow, latencies, sent, delivered, stalls)
  } finally {
    running = false
    clearInterval(watchdog)
  }
}

export async function runFixedRate (flow: TelemetryFlow, timing: PhaseTiming, rate: number): Promise<PhaseResult> {
  const latencies = new LatencyRecorder()
  let sent = 0
  let delivered = 0
  let inWindow = 0
  let measuring = false
  let overloaded = 0
  let device = 0

  flow.onDelivered = (_device, sentAt) => {
    delivered += 1
    if (measuring) {
      inWindow += 1
      latencies.record(nowMs() - sentAt)
    }
  }

  const start = performance.now()
  // Whatever is due since the start goes out on each tick (timers fire about every ms),
  // round robin over the devices; more than 2 s of backlog means the rate cannot be held.
  const ticker = setInterval(() => {
    const due = Math.floor((performance.now() - start) * rate / 1000) - sent
    for (let i = 0; i < due; i++) {
      sent += 1
      flow.send(device)
      device = (device + 1) % flow.devices
    }
    if (sent - delivered > 2 * rate) overloaded = 1
  }, 1)

  try {
    await sleep(timing.warmupMs)
    const meters = await Meters.open(timing.broker)
    measuring = true
    for (let waited = 0; waited < timing.measureMs && !overloaded; waited += 100) await sleep(100)
    measuring = false
    const measured = await meters.close()
    clearInterval(ticker)
    await drain(() => delivered >= sent)
    return summarize(measured, rate, inWindow, latencies, sent, delivered, overloaded)
  } finally {
    clearInterval(ticker)
  }
}

/** Waits up to 3 s for what is in flight to arrive. */
async function drain (done: () => boolean): Promise<void> {
  for (let waited = 0; waited < 3_000 && !done(); waited += 20) await sleep(20)
}

function summarize (measured: Awaited<ReturnType<Meters['close']>>, offered: number | null, inWindow: number, latencies: LatencyRecorder, sent: number, delivered: number, stalls: number): PhaseResult {
  const { usage, brokerLoop, generatorLoop } = measured
  const [p50, p99] = latencies.percentiles([50, 99])
  return {
    rate: inWindow / usage.wallSeconds,
    offered,
    p50,
    p99,
    brokerCpuUs: inWindow > 0 ? usage.brokerSeconds / inWindow * 1e6 : NaN,
    brokerCores: usage.brokerSeconds / usage.wallSeconds,
    generatorCores: usage.generatorSeconds / usage.wallSeconds,
    machineBusy: usage.machineBusy,
    sent,
    delivered,
    lost: Math.max(0, sent - delivered),
    stalls,
    brokerLoop,
    generatorLoop,
  }
}
