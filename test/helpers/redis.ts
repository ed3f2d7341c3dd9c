/**
 * A real redis-server for a test: its own process on a free loopback port, with a temp dir
 * and no persistence, stopped when the test ends. Where redis-server is not installed the
 * test is skipped with the reason, unless MN_REQUIRE_REDIS is set (CI sets it), where that
 * is a failure: a cluster suite that silently did not run proves nothing.
 */
import type { TestContext } from 'node:test'
import { spawn, spawnSync } from 'node:child_process'
import { freePort } from './free-port.js'
import { createInterface } from 'node:readline'
import { tempDir } from './hub.js'

export interface TestRedis {
  url: string
  port: number
  stop (): Promise<void>
}

export function redisAvailable (): boolean {
  return spawnSync('redis-server', ['--version'], { stdio: 'ignore' }).status === 0
}

/** Skips (or, with MN_REQUIRE_REDIS, fails) the test when redis-server is missing; true when it may go on. */
export function requireRedis (t: TestContext): boolean {
  if (redisAvailable()) return true
  const why = 'redis-server is not installed (Debian: apt-get install redis-server); the cluster tests need a real Redis'
  if (process.env.MN_REQUIRE_REDIS) throw new Error(`${why}, and MN_REQUIRE_REDIS is set`)
  t.skip(why)
  return false
}

/** A private redis-server; on `port` when given (to bring one back where it was), else a free one. */
export async function startRedis (t: Pick<TestContext, 'after'>, port?: number): Promise<TestRedis> {
  const dir = tempDir(t, 'metanode-redis-')
  port ??= await freePort()
  const child = spawn('redis-server', [
    '--port', String(port), '--bind', '127.0.0.1', '--dir', dir,
    '--save', '', '--appendonly', 'no', '--protected-mode', 'yes', '--daemonize', 'no',
  ], { stdio: ['ignore', 'pipe', 'inherit'] })
  const stop = async (): Promise<void> => {
    if (child.exitCode !== null || child.signalCode !== null) return
    const exited = new Promise(resolve => child.once('exit', resolve))
    child.kill('SIGTERM')
    await exited
  }
  t.after(stop)
  const lines = createInterface({ input: child.stdout! })
  for await (const line of lines) {
    if (line.includes('Ready to accept connections')) {
      lines.close()
      child.stdout!.resume()
      return { url: `redis://127.0.0.1:${port}`, port, stop }
    }
  }
  throw new Error(`redis-server on port ${port} exited before it was ready`)
}
