/**
 * A hub as its own process, started with the `metanode start` command (through tsx), for
 * tests that kill it (SIGKILL) or run several side by side (cluster mode).
 */
import type { TestContext } from 'node:test'
import { spawn, type ChildProcess } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { setTimeout as sleep } from 'node:timers/promises'

export interface HubProcessOptions {
  dataDir: string
  args?: string[]
  mqttPort?: number
  httpPort?: number
  /**
   * Environment the hub gets besides this process's (MN_ADMIN_TOKEN, MN_DATABASE_URL). Without
   * MN_ADMIN_TOKEN the token comes from the data directory, as processes sharing it do.
   */
  env?: Record<string, string>
}

export interface HubProcess {
  child: ChildProcess
  mqttPort: number
  httpPort: number
  /** The admin token: the one it was given, or the one it keeps in its data directory. */
  adminToken: string
  nodeId: string
  /** The data directory, extra arguments and environment it was started with, for a restart. */
  dataDir: string
  args: string[]
  env?: Record<string, string>
  /** Settles with the exit code (null after a signal) once the process has exited. */
  exited: Promise<number | null>
  /** SIGTERM, and waits for the exit. */
  stop (): Promise<number | null>
  /** SIGKILL, and waits for the exit. */
  kill (): Promise<void>
}

const CLI = ['--import', 'tsx', 'src/cli.ts']

export async function startHubProcess (t: Pick<TestContext, 'after'>, options: HubProcessOptions): Promise<HubProcess> {
  const extra = options.args ?? []
  const args = [
    ...CLI, 'start', '--host', '127.0.0.1', '--data-dir', options.dataDir, '--log-level', 'info',
    '--mqtt-port', String(options.mqttPort ?? 0), '--http-port', String(options.httpPort ?? 0), ...extra,
  ]
  const env: NodeJS.ProcessEnv = { ...process.env }
  delete env.MN_ADMIN_TOKEN
  delete env.MN_DATABASE_URL
  Object.assign(env, options.env)
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'inherit'], env })
  const exited = new Promise<number | null>(resolve => child.once('exit', code => resolve(code)))
  t.after(async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
    await exited
  })
  const lines = createInterface({ input: child.stdout! })
  for await (const line of lines) {
    let entry: { msg?: string, mqttPort?: number, httpPort?: number, nodeId?: string }
    try {
      entry = JSON.parse(line) as typeof entry
    } catch {
      continue
    }
    if (entry.msg === 'hub accepting connections') {
      // Keep draining its log, so that a full pipe never stalls the hub.
      lines.on('line', () => {})
      return {
        child,
        mqttPort: entry.mqttPort!,
        httpPort: entry.httpPort!,
        nodeId: entry.nodeId!,
        adminToken: options.env?.MN_ADMIN_TOKEN ?? readFileSync(join(options.dataDir, 'admin-token'), 'utf8').trim(),
        dataDir: options.dataDir,
        args: extra,
        env: options.env,
        exited,
        async stop () {
          child.kill('SIGTERM')
          return exited
        },
        async kill () {
          child.kill('SIGKILL')
          await exited
        },
      }
    }
  }
  await exited
  throw new Error(`the hub exited (code ${String(child.exitCode)}) before accepting connections`)
}

/**
 * Starts a hub again after it exited: the same data directory, arguments and ports, so that
 * clients reconnect to the address they knew. A port the dead process held can be briefly
 * unavailable, so a start that fails is tried again a few times.
 */
export async function restartHubProcess (t: Pick<TestContext, 'after'>, previous: HubProcess, attempts = 3): Promise<HubProcess> {
  if (previous.child.exitCode === null && previous.child.signalCode === null) throw new Error('the hub is still running: stop or kill it first')
  const options = { dataDir: previous.dataDir, args: previous.args, env: previous.env, mqttPort: previous.mqttPort, httpPort: previous.httpPort }
  for (let attempt = 1; ; attempt++) {
    try {
      return await startHubProcess(t, options)
    } catch (err) {
      if (attempt >= attempts) throw err
      await sleep(250 * attempt)
    }
  }
}
