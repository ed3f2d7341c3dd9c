/**
 * A real PostgreSQL server for a test file: its own cluster (initdb) in a temp dir, on a
 * free loopback port, stopped when the test ends; each test takes a fresh database of it.
 * Where PostgreSQL is not installed the test is skipped with the reason, unless
 * MN_REQUIRE_POSTGRES is set (CI sets it), where that is a failure.
 *
 * PostgreSQL refuses to run as root, so as root the server runs as the `postgres` user
 * Debian's package creates. fsync is off: these servers hold test data only, and the
 * crash tests kill hubs, never the database server.
 */
import type { TestContext } from 'node:test'
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { chownSync, existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs'
import { freePort } from './free-port.js'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import pg from 'pg'

export interface TestPostgres {
  port: number
  /** A new, empty database on this server, dropped with the server. */
  createDatabase (): Promise<string>
  /** Shuts the server down, keeping its data, as an outage would. */
  halt (): Promise<void>
  /** Starts it again on the same port and data after halt(). */
  resume (): Promise<void>
  /** Shuts it down and removes its data. */
  stop (): Promise<void>
}

/** The directory holding initdb and postgres, or null when PostgreSQL is not installed (the benches use it too). */
export function postgresBinDir (): string | null {
  const inPath = spawnSync('sh', ['-c', 'command -v initdb'], { encoding: 'utf8' })
  if (inPath.status === 0 && inPath.stdout.trim() !== '') return join(inPath.stdout.trim(), '..')
  const root = '/usr/lib/postgresql'
  if (!existsSync(root)) return null
  const versions = readdirSync(root).filter(v => existsSync(join(root, v, 'bin', 'initdb'))).sort((a, b) => Number(b) - Number(a))
  return versions.length > 0 ? join(root, versions[0], 'bin') : null
}

/**
 * Why tests that need PostgreSQL cannot run here, or false when they can. With
 * MN_REQUIRE_POSTGRES set (CI sets it) a missing PostgreSQL throws instead: a store suite
 * that silently did not run proves nothing.
 */
export function postgresSkipReason (): string | false {
  if (postgresBinDir() !== null) return false
  const why = 'PostgreSQL is not installed (Debian: apt-get install postgresql); the multi-host store tests need a real server'
  if (process.env.MN_REQUIRE_POSTGRES) throw new Error(`${why}, and MN_REQUIRE_POSTGRES is set`)
  return why
}

/** As root, PostgreSQL's programs run as the postgres user; otherwise as this one. */
function serverUser (): { uid?: number, gid?: number } {
  return process.getuid?.() === 0 ? postgresUserIds('postgres') : {}
}

export async function startPostgres (t: Pick<TestContext, 'after'>): Promise<TestPostgres> {
  const bin = postgresBinDir()
  if (!bin) throw new Error('PostgreSQL is not installed')
  const dir = mkdtempSync(join(tmpdir(), 'metanode-pg-'))
  const user = serverUser()
  if (user.uid !== undefined) chownSync(dir, user.uid, user.gid!)
  const init = spawnSync(join(bin, 'initdb'), ['-D', dir, '-U', 'postgres', '--auth=trust', '--no-sync', '-E', 'UTF8', '--locale=C'], { encoding: 'utf8', cwd: dir, ...user })
  if (init.status !== 0) throw new Error(`initdb failed: ${init.stderr}`)

  const port = await freePort()
  const adminUrl = `postgres://postgres@127.0.0.1:${port}/postgres`
  let child: ChildProcess | null = null
  let log = ''

  /** Starts the server on the cluster's directory and port, and waits until it answers. */
  const launch = async (): Promise<void> => {
    const server = child = spawn(join(bin, 'postgres'), [
      '-D', dir, '-p', String(port), '-k', dir,
      '-c', 'listen_addresses=127.0.0.1', '-c', 'fsync=off', '-c', 'synchronous_commit=off',
      '-c', 'full_page_writes=off', '-c', 'max_connections=200',
    ], { stdio: ['ignore', 'ignore', 'pipe'], cwd: dir, ...user })
    server.stderr!.on('data', (chunk: Buffer) => { if (log.length < 20_000) log += chunk.toString() })
    const deadline = Date.now() + 30_000
    for (;;) {
      if (server.exitCode !== null) throw new Error(`postgres exited before it was ready:\n${log}`)
      const client = new pg.Client({ connectionString: adminUrl })
      try {
        await client.connect()
        await client.end()
        return
      } catch (err) {
        await client.end().catch(() => {})
        if (Date.now() > deadline) throw new Error(`postgres was not ready within 30 s: ${(err as Error).message}\n${log}`)
        await new Promise(resolve => setTimeout(resolve, 100))
      }
    }
  }
  const halt = async (): Promise<void> => {
    const server = child
    if (server && server.exitCode === null && server.signalCode === null) {
      const exited = new Promise(resolve => server.once('exit', resolve))
      // SIGINT is PostgreSQL's "fast shutdown": open connections are ended, not waited for.
      server.kill('SIGINT')
      await exited
    }
  }
  const stop = async (): Promise<void> => {
    await halt()
    rmSync(dir, { recursive: true, force: true })
  }
  t.after(stop)
  await launch()
  const databases: string[] = []

  return {
    port,
    async createDatabase () {
      const name = `t${databases.length}_${Math.random().toString(36).slice(2, 8)}`
      const client = new pg.Client({ connectionString: adminUrl })
      await client.connect()
      try {
        await client.query(`CREATE DATABASE ${name}`)
      } finally {
        await client.end()
      }
      databases.push(name)
      return `postgres://postgres@127.0.0.1:${port}/${name}`
    },
    halt,
    resume: launch,
    stop,
  }
}

/** The uid and gid of a user (the server runs as `postgres` when this process is root). */
export function postgresUserIds (user: string): { uid: number, gid: number } {
  const out = spawnSync('id', ['-u', user], { encoding: 'utf8' })
  const group = spawnSync('id', ['-g', user], { encoding: 'utf8' })
  if (out.status !== 0 || group.status !== 0) throw new Error(`running PostgreSQL as root needs the "${user}" user (Debian's postgresql package creates it)`)
  return { uid: Number(out.stdout.trim()), gid: Number(group.stdout.trim()) }
}
