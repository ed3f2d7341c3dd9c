/**
 * Broker child processes. Every child started here is tracked, and killed on the way
 * out whatever happens (normal end, an exception, Ctrl-C): a benchmark must not leave
 * brokers listening behind it.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process'
import { createInterface } from 'node:readline'
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { createServer, connect } from 'node:net'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url))
const live = new Set<ChildProcess>()

process.on('exit', () => {
  for (const child of live) child.kill('SIGKILL')
})

export interface LoopDelay {
  p99Ms: number
  maxMs: number
}

export interface BrokerProcess {
  readonly name: string
  readonly pid: number
  readonly mqttPort: number
  /** What the child printed when ready (ports, admin token). */
  readonly info: Record<string, unknown>
  /** Node heap after a full GC, for Node children; null for others. */
  memory (): Promise<NodeJS.MemoryUsage | null>
  /** Event-loop delay since the previous call (Node brokers; null for others). */
  loopDelay (): Promise<LoopDelay | null>
  /** CPU-profiles the child's main thread while `during` runs (Node brokers; a no-op for others). */
  profile<T> (file: string, during: () => Promise<T>): Promise<T>
  stop (): Promise<void>
}

/** Runs bench/servers/NAME.ts with tsx and waits for its ready line. */
export async function startNodeBroker (name: string, script: string, nodeArgs: string[] = []): Promise<BrokerProcess> {
  const child = spawn(process.execPath, ['--expose-gc', ...nodeArgs, '--import', 'tsx', join(REPO_ROOT, 'bench/servers', script)], {
    cwd: REPO_ROOT,
    stdio: ['pipe', 'pipe', 'inherit'],
  })
  live.add(child)
  child.once('exit', () => live.delete(child))
  const waiters: Array<(message: Record<string, unknown>) => void> = []
  const lines = createInterface({ input: child.stdout! })
  lines.on('line', line => {
    // Anything else the child prints (--trace-gc, a stray log line) is passed on to stderr.
    if (!line.startsWith('{')) return void process.stderr.write(`[${name}] ${line}\n`)
    try {
      const message = JSON.parse(line) as Record<string, unknown>
      waiters.shift()?.(message)
    } catch {
      // Not one of ours: ignore.
    }
  })
  const next = (timeoutMs: number): Promise<Record<string, unknown>> => new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${name}: no answer within ${timeoutMs} ms`)), timeoutMs)
    const onExit = (code: number | null): void => reject(new Error(`${name} exited with code ${code}`))
    child.once('exit', onExit)
    waiters.push(message => {
      clearTimeout(timer)
      child.off('exit', onExit)
      resolve(message)
    })
  })

  try {
    const ready = (await next(30_000)).ready as Record<string, unknown>
    return {
      name,
      pid: child.pid!,
      mqttPort: Number(ready.mqttPort),
      info: ready,
      async memory () {
        const answer = next(10_000)
        child.stdin!.write('mem\n')
        return (await answer).mem as NodeJS.MemoryUsage
      },
      async loopDelay () {
        const answer = next(10_000)
        child.stdin!.write('loop\n')
        return (await answer).loop as LoopDelay
      },
      async profile (file, during) {
        const started = next(10_000)
        child.stdin!.write('profile-start\n')
        await started
        try {
          return await during()
        } finally {
          const stopped = next(60_000)
          child.stdin!.write(`profile-stop ${file}\n`)
          await stopped
        }
      },
      stop: () => stopChild(child),
    }
  } catch (err) {
    await stopChild(child)
    throw err
  }
}

/** The mosquitto binary: on PATH, or where Debian puts it (/usr/sbin is not on every PATH). */
export function findMosquitto (): string | null {
  try {
    const found = execFileSync('which', ['mosquitto'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim()
    if (found) return found
  } catch {
    // Not on PATH.
  }
  return existsSync('/usr/sbin/mosquitto') ? '/usr/sbin/mosquitto' : null
}

/** Mosquitto on a free loopback port, anonymous allowed, TCP_NODELAY on. */
export async function startMosquitto (binary: string): Promise<BrokerProcess> {
  const port = await freePort()
  const dir = mkdtempSync(join(tmpdir(), 'metanode-bench-mosquitto-'))
  const config = join(dir, 'mosquitto.conf')
  writeFileSync(config, [
    `listener ${port} 127.0.0.1`,
    'allow_anonymous true',
    // Mosquitto leaves Nagle on by default; the Node brokers turn it off.
    'set_tcp_nodelay true',
    'persistence false',
    'log_dest stderr',
    'log_type error',
    '',
  ].join('\n'))
  const child = spawn(binary, ['-c', config], { stdio: ['ignore', 'ignore', 'inherit'] })
  live.add(child)
  child.once('exit', () => {
    live.delete(child)
    rmSync(dir, { recursive: true, force: true })
  })
  try {
    await waitForPort(port, 10_000)
  } catch (err) {
    await stopChild(child)
    throw err
  }
  return {
    name: 'mosquitto',
    pid: child.pid!,
    mqttPort: port,
    info: { mqttPort: port },
    memory: async () => null,
    loopDelay: async () => null,
    profile: (_file, during) => during(),
    stop: () => stopChild(child),
  }
}

/** SIGTERM, then SIGKILL if the child has not exited within 5 s. */
function stopChild (child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve()
  return new Promise(resolve => {
    const timer = setTimeout(() => child.kill('SIGKILL'), 5_000)
    child.once('exit', () => {
      clearTimeout(timer)
      resolve()
    })
    child.kill('SIGTERM')
  })
}

/** Kills every child still running (used on errors and signals). */
export async function stopAllChildren (): Promise<void> {
  await Promise.all([...live].map(stopChild))
}

/** A loopback port nothing listens on right now, for a server the bench starts. */
export function freePort (): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as AddressInfo
      server.close(() => resolve(port))
    })
  })
}

async function waitForPort (port: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    const ok = await new Promise<boolean>(resolve => {
      const socket = connect(port, '127.0.0.1')
      socket.once('connect', () => { socket.destroy(); resolve(true) })
      socket.once('error', () => resolve(false))
    })
    if (ok) return
    await new Promise(resolve => setTimeout(resolve, 50))
  }
  throw new Error(`nothing listening on 127.0.0.1:${port} after ${timeoutMs} ms`)
}
