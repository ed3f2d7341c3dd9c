/**
 * A private redis-server for a bench: its own process on a free loopback port, its files in
 * a directory the bench gives it, no persistence (`--save '' --appendonly no`) unless the
 * bench turns AOF on at run time. Tracked like the broker children: stopped on the way out
 * whatever happens, and killed if the bench exits without stopping it.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { createInterface } from 'node:readline'
import { Redis } from 'ioredis'
import { freePort } from './children.js'

const live = new Set<ChildProcess>()
/** Stops each server still running, its admin connection first (an open one keeps the bench alive). */
const stoppers = new Set<() => Promise<void>>()

process.on('exit', () => {
  for (const child of live) child.kill('SIGKILL')
})

export interface RedisServer {
  readonly pid: number
  readonly port: number
  readonly url: string
  readonly version: string
  /** A command connection of the bench's own (INFO, CONFIG SET); not counted as load. */
  readonly admin: Redis
  stop (): Promise<void>
}

export function redisServerVersion (): string | null {
  const result = spawnSync('redis-server', ['--version'], { encoding: 'utf8' })
  if (result.status !== 0) return null
  return /v=(\S+)/.exec(result.stdout)?.[1] ?? 'unknown version'
}

export async function startRedisServer (dir: string): Promise<RedisServer> {
  const version = redisServerVersion()
  if (version === null) throw new Error('redis-server is not installed (Debian: apt-get install redis-server)')
  const port = await freePort()
  const child = spawn('redis-server', [
    '--port', String(port), '--bind', '127.0.0.1', '--dir', dir,
    '--save', '', '--appendonly', 'no', '--protected-mode', 'yes', '--daemonize', 'no',
  ], { stdio: ['ignore', 'pipe', 'inherit'] })
  live.add(child)
  const exited = new Promise<void>(resolve => child.once('exit', () => {
    live.delete(child)
    resolve()
  }))
  const stopChild = async (): Promise<void> => {
    if (child.exitCode !== null || child.signalCode !== null) return
    const timer = setTimeout(() => child.kill('SIGKILL'), 5_000)
    child.kill('SIGTERM')
    await exited
    clearTimeout(timer)
  }
  const lines = createInterface({ input: child.stdout! })
  let ready = false
  for await (const line of lines) {
    if (line.includes('Ready to accept connections')) {
      ready = true
      break
    }
  }
  lines.close()
  // Its later log lines are not read: keep the pipe drained.
  child.stdout!.resume()
  if (!ready) {
    await stopChild()
    throw new Error(`redis-server on port ${port} exited before it was ready`)
  }
  const url = `redis://127.0.0.1:${port}`
  const admin = new Redis(url, { maxRetriesPerRequest: 1 })
  admin.on('error', () => {})
  const stop = async (): Promise<void> => {
    stoppers.delete(stop)
    admin.disconnect()
    await stopChild()
  }
  stoppers.add(stop)
  return { pid: child.pid!, port, url, version, admin, stop }
}

/** Stops every redis-server still running (the normal end, errors and signals). */
export async function stopAllRedisServers (): Promise<void> {
  await Promise.all([...stoppers].map(stop => stop()))
}

/** Per-command totals from INFO commandstats: calls and microseconds inside Redis. */
export async function commandStats (admin: Redis): Promise<Map<string, { calls: number, usec: number }>> {
  const text = await admin.info('commandstats')
  const stats = new Map<string, { calls: number, usec: number }>()
  for (const match of text.matchAll(/^cmdstat_([^:]+):calls=(\d+),usec=(\d+)/gm)) {
    stats.set(match[1], { calls: Number(match[2]), usec: Number(match[3]) })
  }
  return stats
}

/**
 * Turns the append-only file on with an fsync before every reply batch (`appendfsync
 * always`: what docs/operations.md §3 recommends for a fleet that must lose nothing), or
 * off again. Turning it on rewrites the AOF in the background first: wait for that.
 */
export async function setAppendFsyncAlways (admin: Redis, on: boolean): Promise<void> {
  if (!on) {
    await admin.config('SET', 'appendonly', 'no')
    return
  }
  await admin.config('SET', 'appendfsync', 'always')
  await admin.config('SET', 'appendonly', 'yes')
  const deadline = Date.now() + 30_000
  for (;;) {
    const info = await admin.info('persistence')
    if (/^aof_enabled:1/m.test(info) && /^aof_rewrite_in_progress:0/m.test(info) && /^aof_rewrite_scheduled:0/m.test(info)) return
    if (Date.now() > deadline) throw new Error('redis: the AOF rewrite did not finish within 30 s')
    await new Promise(resolve => setTimeout(resolve, 50))
  }
}
