/**
 * The small stdin/stdout protocol between the bench and a broker child. The child prints
 * one JSON line when it is ready and answers each command with one JSON line:
 * - `mem`: its memory after a full GC (the child runs with --expose-gc);
 * - `loop`: its event-loop delay since the previous `loop` (a stalled loop is what long
 *   latency tails are made of);
 * - `profile-start`, `profile-stop FILE`: a CPU profile of its main thread, so that a
 *   profile covers one phase, not the whole run.
 * It exits on SIGTERM, SIGINT or when its stdin closes, so a bench that dies never leaves
 * a broker behind.
 */
import { createInterface } from 'node:readline'
import { writeFileSync } from 'node:fs'
import { Session } from 'node:inspector/promises'
import { monitorEventLoopDelay } from 'node:perf_hooks'

export function serveControl (ready: Record<string, unknown>, close: () => Promise<void>): void {
  let closing = false
  const shutdown = (code: number): void => {
    if (closing) return
    closing = true
    // A hung close must not keep the child alive: the bench waits only so long.
    setTimeout(() => process.exit(code), 5_000).unref()
    close().then(() => process.exit(code), err => {
      process.stderr.write(`close failed: ${String(err)}\n`)
      process.exit(1)
    })
  }
  process.on('SIGTERM', () => shutdown(0))
  process.on('SIGINT', () => shutdown(0))

  const lines = createInterface({ input: process.stdin })
  let session: Session | null = null
  const loop = monitorEventLoopDelay({ resolution: 5 })
  loop.enable()
  lines.on('line', line => {
    const [command, arg] = line.trim().split(' ')
    switch (command) {
      case 'mem':
        return reply({ mem: memoryAfterGc() })
      case 'loop':
        reply({ loop: { p99Ms: loop.percentile(99) / 1e6, maxMs: loop.max / 1e6 } })
        return loop.reset()
      case 'profile-start': {
        const started = new Session()
        session = started
        started.connect()
        started.post('Profiler.enable')
          .then(() => started.post('Profiler.start'))
          .then(() => reply({ profiling: true }), err => reply({ error: String(err) }))
        return
      }
      case 'profile-stop': {
        const current = session
        session = null
        if (!current || !arg) return reply({ error: 'not profiling' })
        current.post('Profiler.stop').then(({ profile }) => {
          writeFileSync(arg, JSON.stringify(profile))
          current.disconnect()
          reply({ profile: arg })
        }, err => reply({ error: String(err) }))
      }
    }
  })
  lines.on('close', () => shutdown(0))
  reply({ ready })
}

function reply (message: Record<string, unknown>): void {
  process.stdout.write(`${JSON.stringify(message)}\n`)
}

/** Heap figures after a full collection (the child runs with --expose-gc), so deltas are live data, not garbage. */
function memoryAfterGc (): NodeJS.MemoryUsage {
  const gc = (globalThis as { gc?: () => void }).gc
  if (gc) {
    gc()
    gc()
  }
  return process.memoryUsage()
}
