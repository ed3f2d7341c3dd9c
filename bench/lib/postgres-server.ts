/**
 * A private PostgreSQL server for a bench: its own cluster (initdb) in a directory the bench
 * gives it, on a free loopback port, with PostgreSQL's durability defaults left alone
 * (fsync on, synchronous_commit on, full_page_writes on): a bench that compares where the
 * records are kept must pay for the same promise on both engines. As root the server runs
 * as the `postgres` user Debian's package creates (PostgreSQL refuses to run as root), as in
 * test/helpers/postgres.ts. Tracked like the other bench servers: stopped on the way out
 * whatever happens, and killed if the bench exits without stopping it.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { chownSync, readFileSync, readdirSync } from 'node:fs'
import { join } from 'node:path'
import pg from 'pg'
import { postgresBinDir, postgresUserIds } from '../../test/helpers/postgres.js'
import { freePort } from './children.js'
import { ticksPerSecond } from './proc.js'

const live = new Set<ChildProcess>()
/** Stops each server still running, its admin connection first (an open one keeps the bench alive). */
const stoppers = new Set<() => Promise<void>>()

process.on('exit', () => {
  // SIGQUIT is PostgreSQL's immediate shutdown: the postmaster takes its backends with it,
  // which SIGKILL would leave to notice on their own.
  for (const child of live) child.kill('SIGQUIT')
})

export interface WalStats {
  /** WAL records and bytes written. */
  records: number
  bytes: number
  /** write() and fsync (fdatasync by default on Linux) calls on WAL files, by every process. */
  writes: number
  syncs: number
  /** Time in those calls, ms (track_wal_io_timing is on for this server). */
  writeMs: number
  syncMs: number
}

export interface PostgresServer {
  readonly pid: number
  readonly port: number
  /** `postgres --version`, e.g. "15.14 (Debian 15.14-0+deb12u1)". */
  readonly version: string
  /** Settings as the running server reports them (SHOW), for the ones asked at start. */
  readonly settings: Readonly<Record<string, string>>
  /**
   * How to have a backend publish its statistics now: wait `afterMs`, then run `sql` on
   * it; it publishes before it answers. A backend publishes by itself when it goes idle,
   * but at most once a second, and what is left then waits for a 10 s idle timer.
   * PostgreSQL 15+ has pg_stat_force_next_flush(); the wait is for the WAL writer, which
   * publishes its own counters each time round its loop (wal_writer_delay, 200 ms). Older
   * servers: once a second has passed since the backend last published, any statement.
   */
  readonly statsFlush: { sql: string, afterMs: number }
  /** A new, empty database; its URL. */
  createDatabase (name: string): Promise<string>
  /**
   * CPU seconds (user + system) of the whole server: the postmaster, every process it runs
   * now (backends, WAL writer, checkpointer, ...) and those that have exited.
   */
  cpuSeconds (): number
  /** pg_stat_wal, as last published (see statsFlush); null before PostgreSQL 14, which has none. */
  walStats (): Promise<WalStats | null>
  stop (): Promise<void>
}

/** The settings read back and printed, so the output says what the server ran with. */
const REPORTED_SETTINGS = ['server_version', 'server_version_num', 'fsync', 'synchronous_commit', 'full_page_writes', 'wal_sync_method', 'commit_delay', 'shared_buffers', 'max_connections']

export function postgresServerVersion (): string | null {
  const bin = postgresBinDir()
  if (bin === null) return null
  const result = spawnSync(join(bin, 'postgres'), ['--version'], { encoding: 'utf8' })
  if (result.status !== 0) return null
  return /\(PostgreSQL\)\s+(.+)$/m.exec(result.stdout.trim())?.[1] ?? 'unknown version'
}


/** utime + stime (and, with `children`, cutime + cstime: exited, reaped children) of a process, in ticks. */
function statTicks (fields: string[], children: boolean): number {
  const own = Number(fields[11]) + Number(fields[12])
  return children ? own + Number(fields[13]) + Number(fields[14]) : own
}

/** The fields of /proc/PID/stat after the command name (fields[0] is field 3, the state). */
function statFields (pid: number | string): string[] | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    // The command name may hold spaces and parentheses: count fields after the last ')'.
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  } catch {
    // Gone between the listing and the read.
    return null
  }
}

/**
 * CPU seconds of a process and all its children, living or exited. A child that exits is
 * added to its parent's cutime/cstime when reaped, so the sum does not drop when a backend
 * ends; PostgreSQL's processes are all children of the postmaster (none forks further).
 */
function treeCpuSeconds (pid: number): number {
  const root = statFields(pid)
  if (root === null) return NaN
  let ticks = statTicks(root, true)
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue
    const fields = statFields(entry)
    if (fields !== null && Number(fields[1]) === pid) ticks += statTicks(fields, false)
  }
  return ticks / ticksPerSecond()
}

/**
 * initdb in `dir` (a new, empty directory that the server's user can reach: as root, every
 * directory above it must be searchable by `postgres`), then the server on a free loopback
 * port, its Unix socket in `dir` too.
 */
export async function startPostgresServer (dir: string): Promise<PostgresServer> {
  const bin = postgresBinDir()
  if (bin === null) throw new Error('PostgreSQL is not installed (Debian: apt-get install postgresql)')
  const version = postgresServerVersion() ?? 'unknown version'
  const user: { uid?: number, gid?: number } = process.getuid?.() === 0 ? postgresUserIds('postgres') : {}
  if (user.uid !== undefined) chownSync(dir, user.uid, user.gid!)
  // --no-sync skips only initdb's own flush of the new files (the directory is deleted at
  // the end); the server's settings are untouched by it.
  const init = spawnSync(join(bin, 'initdb'), ['-D', dir, '-U', 'postgres', '--auth=trust', '--no-sync', '-E', 'UTF8', '--locale=C'], { encoding: 'utf8', cwd: dir, ...user })
  if (init.status !== 0) throw new Error(`initdb failed: ${init.stderr || init.error?.message}`)

  const port = await freePort()
  const child = spawn(join(bin, 'postgres'), [
    '-D', dir, '-p', String(port), '-k', dir,
    '-c', 'listen_addresses=127.0.0.1',
    // A meter, not a durability setting: times the WAL's writes and fsyncs in pg_stat_wal.
    '-c', 'track_wal_io_timing=on',
  ], { stdio: ['ignore', 'ignore', 'pipe'], cwd: dir, ...user })
  live.add(child)
  let log = ''
  child.stderr!.on('data', (chunk: Buffer) => { if (log.length < 20_000) log += chunk.toString() })
  const exited = new Promise<void>(resolve => child.once('exit', () => {
    live.delete(child)
    resolve()
  }))
  const stopChild = async (): Promise<void> => {
    if (child.exitCode !== null || child.signalCode !== null) return
    // SIGINT is the "fast shutdown": sessions are ended, not waited for, then a last
    // checkpoint; past 30 s, the immediate one.
    const timer = setTimeout(() => child.kill('SIGQUIT'), 30_000)
    child.kill('SIGINT')
    await exited
    clearTimeout(timer)
  }

  const adminUrl = `postgres://postgres@127.0.0.1:${port}/postgres`
  const admin = new pg.Client({ connectionString: adminUrl })
  try {
    const deadline = Date.now() + 30_000
    for (;;) {
      if (child.exitCode !== null || child.signalCode !== null) throw new Error(`postgres exited before it was ready:\n${log}`)
      const probe = new pg.Client({ connectionString: adminUrl })
      try {
        await probe.connect()
        await probe.end()
        break
      } catch (err) {
        await probe.end().catch(() => {})
        if (Date.now() > deadline) throw new Error(`postgres was not ready within 30 s: ${(err as Error).message}\n${log}`)
        await new Promise(resolve => setTimeout(resolve, 100))
      }
    }
    await admin.connect()
  } catch (err) {
    await admin.end().catch(() => {})
    await stopChild()
    throw err
  }
  // The server going away under it (a fast shutdown) is an error event; unhandled, it would
  // end the bench.
  admin.on('error', () => {})

  const settings: Record<string, string> = {}
  for (const name of REPORTED_SETTINGS) {
    settings[name] = String((await admin.query(`SHOW ${name}`)).rows[0][name])
  }

  const versionNum = Number(settings.server_version_num)

  const stop = async (): Promise<void> => {
    stoppers.delete(stop)
    await admin.end().catch(() => {})
    await stopChild()
  }
  stoppers.add(stop)

  return {
    pid: child.pid!,
    port,
    version,
    settings,
    statsFlush: versionNum >= 150_000 ? { sql: 'SELECT pg_stat_force_next_flush()', afterMs: 250 } : { sql: 'SELECT 1', afterMs: 1_100 },
    async createDatabase (name) {
      if (!/^[a-z_][a-z0-9_]*$/.test(name)) throw new Error(`database name "${name}": lowercase letters, digits and _ only`)
      await admin.query(`CREATE DATABASE ${name}`)
      return `postgres://postgres@127.0.0.1:${port}/${name}`
    },
    cpuSeconds: () => treeCpuSeconds(child.pid!),
    async walStats () {
      if (versionNum < 140_000) return null
      const row = (await admin.query('SELECT wal_records, wal_bytes, wal_write, wal_sync, wal_write_time, wal_sync_time FROM pg_stat_wal')).rows[0] as Record<string, string | number>
      return {
        records: Number(row.wal_records),
        bytes: Number(row.wal_bytes),
        writes: Number(row.wal_write),
        syncs: Number(row.wal_sync),
        writeMs: Number(row.wal_write_time),
        syncMs: Number(row.wal_sync_time),
      }
    },
    stop,
  }
}

/** Stops every PostgreSQL server still running (the normal end, errors and signals). */
export async function stopAllPostgresServers (): Promise<void> {
  await Promise.all([...stoppers].map(stop => stop()))
}
