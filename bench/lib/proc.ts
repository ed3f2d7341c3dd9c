/**
 * Readers for Linux /proc: CPU time and resident memory of a process, and whole-machine
 * CPU use. Broker CPU time per delivered message is the steadier figure on a shared,
 * noisy 2-core machine where the load generator itself takes a core.
 */
import { readFileSync } from 'node:fs'
import { execFileSync } from 'node:child_process'

let clockTicks: number | null = null

/** USER_HZ: the unit of utime and stime in /proc/PID/stat (100 on every common kernel). */
export function ticksPerSecond (): number {
  if (clockTicks === null) {
    try {
      clockTicks = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100
    } catch {
      clockTicks = 100
    }
  }
  return clockTicks
}

/** User + system CPU seconds the process has used so far. */
export function processCpuSeconds (pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
  // The command name (field 2) may hold spaces and parentheses: count fields after the last ')'.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  // Fields 14 (utime) and 15 (stime), counted from 1; fields[0] is field 3 (state).
  return (Number(fields[11]) + Number(fields[12])) / ticksPerSecond()
}

/**
 * User + system CPU seconds of a process's main thread alone (/proc/PID/task/PID/stat):
 * the event loop, without libuv's pool and V8's helper threads.
 */
export function mainThreadCpuSeconds (pid: number = process.pid): number {
  const stat = readFileSync(`/proc/${pid}/task/${pid}/stat`, 'utf8')
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  return (Number(fields[11]) + Number(fields[12])) / ticksPerSecond()
}

/** Resident set size in bytes (VmRSS). */
export function processRssBytes (pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8')
  const match = /^VmRSS:\s+(\d+)\s+kB/m.exec(status)
  if (!match) throw new Error(`no VmRSS for pid ${pid}`)
  return Number(match[1]) * 1024
}

export interface MachineCpu {
  busy: number
  total: number
}

/** Whole-machine CPU counters from /proc/stat (all cores), in ticks. */
export function machineCpu (): MachineCpu {
  const line = readFileSync('/proc/stat', 'utf8').split('\n')[0]
  const values = line.trim().split(/\s+/).slice(1).map(Number)
  // user nice system idle iowait irq softirq steal ...: idle and iowait are not busy.
  const total = values.slice(0, 8).reduce((a, b) => a + b, 0)
  const idle = values[3] + (values[4] ?? 0)
  return { busy: total - idle, total }
}

/** Fraction of all cores busy between two readings (0–1). */
export function machineBusyFraction (before: MachineCpu, after: MachineCpu): number {
  const total = after.total - before.total
  return total > 0 ? (after.busy - before.busy) / total : 0
}

/** A CPU meter over one measured window: the broker's, the generator's and the machine's. */
export class CpuWindow {
  readonly #brokerPid: number
  readonly #broker0: number
  readonly #self0: NodeJS.CpuUsage
  readonly #machine0: MachineCpu
  readonly #t0: number

  constructor (brokerPid: number) {
    this.#brokerPid = brokerPid
    this.#broker0 = processCpuSeconds(brokerPid)
    this.#self0 = process.cpuUsage()
    this.#machine0 = machineCpu()
    this.#t0 = performance.now()
  }

  /** CPU seconds used since the window opened and the wall time it lasted. */
  read (): { wallSeconds: number, brokerSeconds: number, generatorSeconds: number, machineBusy: number } {
    const self = process.cpuUsage(this.#self0)
    return {
      wallSeconds: (performance.now() - this.#t0) / 1000,
      brokerSeconds: processCpuSeconds(this.#brokerPid) - this.#broker0,
      generatorSeconds: (self.user + self.system) / 1e6,
      machineBusy: machineBusyFraction(this.#machine0, machineCpu()),
    }
  }
}
