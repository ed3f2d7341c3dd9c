/**
 * fsync of a SQLite database's WAL file on libuv's thread pool, so that the event loop does
 * not wait for the disk (group-commit.ts says why).
 *
 * Why this is as durable as SQLite's synchronous = FULL: in WAL mode a transaction is
 * committed once its frames, the last one marked as a commit, are in the WAL file with
 * valid checksums; FULL fsyncs the WAL at every COMMIT, NORMAL (which the connection runs
 * at) only before a checkpoint, and syncs the database file after one. Frames of a
 * committed transaction are never overwritten before a checkpoint has copied them into the
 * database and synced it, so after fdatasync(WAL) returns, every transaction committed
 * before the call started survives a power cut, exactly as under FULL. fdatasync also
 * writes the file size, which a grown WAL needs to be read back.
 */
import { closeSync, fdatasync, fsyncSync, openSync } from 'node:fs'
import { dirname } from 'node:path'
import type { SyncFunction } from './group-commit.js'

export interface WalSync {
  /** Makes every commit so far durable, off the main thread. */
  sync: SyncFunction
  close (): void
}

export function walSync (databaseFile: string): WalSync {
  const walFile = `${databaseFile}-wal`
  let fd: number | null = null

  /** The WAL's descriptor, opened at the first sync (the WAL exists once a write was committed). */
  function walFd (): number | null {
    if (fd !== null) return fd
    try {
      fd = openSync(walFile, 'r')
    } catch (err) {
      // No WAL yet: nothing was ever written through this connection, so nothing to sync.
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null
      throw err
    }
    // The WAL's directory entry must survive a power cut too; once is enough, SQLite keeps
    // the file (it truncates it, never unlinks it, while the database is open).
    const directory = openSync(dirname(walFile), 'r')
    try {
      fsyncSync(directory)
    } finally {
      closeSync(directory)
    }
    return fd
  }

  return {
    sync (done) {
      let target: number | null
      try {
        target = walFd()
      } catch (err) {
        done(err as Error)
        return
      }
      if (target === null) {
        done(null)
        return
      }
      fdatasync(target, err => done(err))
    },
    close () {
      if (fd !== null) closeSync(fd)
      fd = null
    },
  }
}
