/**
 * The admin token of protocol-v1 §8: the configured one (MN_ADMIN_TOKEN, resolved into the
 * config by the caller) or one generated on first start and kept in the data directory,
 * readable by its owner only. The token itself is never logged.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto'
import { chmod, link, mkdir, readFile, stat, unlink, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { Logger } from 'pino'
import { ConfigError } from '../errors.js'

export const ADMIN_TOKEN_FILE = 'admin-token'
/** Entropy of a generated token, in bytes (43 base64url characters). */
export const ADMIN_TOKEN_BYTES = 32
/** A token shorter than this is refused, the same floor as the config's. */
export const ADMIN_TOKEN_CHARS_MIN = 16

export interface AdminTokenOptions {
  dataDir: string
  /** The configured token; when given, no file is read or written. */
  token?: string | null
  log: Logger
}

export async function loadOrCreateAdminToken (options: AdminTokenOptions): Promise<string> {
  const { dataDir, token, log } = options
  if (token !== undefined && token !== null) {
    requireToken(token, 'the configured admin token')
    log.info({ source: 'config' }, 'admin token taken from the configuration')
    return token
  }
  const file = join(dataDir, ADMIN_TOKEN_FILE)
  const existing = await readTokenFile(file, log)
  if (existing !== undefined) {
    log.info({ source: 'file', file }, 'admin token loaded')
    return existing
  }
  await mkdir(dataDir, { recursive: true, mode: 0o700 })
  const generated = randomBytes(ADMIN_TOKEN_BYTES).toString('base64url')
  // Written whole to a temporary file, then linked into place: link fails if the file
  // exists, so two hubs starting at once on one data directory agree on one token, and
  // no reader ever sees a half-written file.
  const temporary = `${file}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`
  try {
    await writeFile(temporary, generated, { mode: 0o600, flag: 'wx', flush: true })
    await chmod(temporary, 0o600) // the umask may have narrowed it, never widened; be exact
    await link(temporary, file)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err
    const winner = await readTokenFile(file, log)
    if (winner === undefined) throw err
    return winner
  } finally {
    await unlink(temporary).catch(() => {})
  }
  log.info({ source: 'generated', file }, 'admin token created; read it from the file')
  return generated
}

/** Constant-time comparison: hashing first makes the lengths equal, so not even they leak. */
export function tokenMatches (expected: string, presented: string | undefined | null): boolean {
  return tokenMatcher(expected)(presented)
}

/**
 * The same comparison with the expected token hashed once, for the per-request check
 * (hashing it on every request was a measurable share of a GET).
 */
export function tokenMatcher (expected: string): (presented: string | undefined | null) => boolean {
  const expectedDigest = digest(expected)
  return presented => typeof presented === 'string' && presented.length > 0 && timingSafeEqual(expectedDigest, digest(presented))
}

function digest (value: string): Buffer {
  return createHash('sha256').update(value, 'utf8').digest()
}

async function readTokenFile (file: string, log: Logger): Promise<string | undefined> {
  let text: string
  try {
    text = await readFile(file, 'utf8')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw err
  }
  const { mode } = await stat(file)
  if ((mode & 0o077) !== 0) {
    log.warn({ file, mode: (mode & 0o777).toString(8) }, 'the admin token file is readable by others than its owner; chmod 600 it')
  }
  // Trimmed so that an operator who wrote the file with an editor's newline is not locked out.
  const token = text.trim()
  requireToken(token, `the admin token in ${file}`)
  return token
}

function requireToken (token: string, what: string): void {
  if (typeof token !== 'string' || token.length < ADMIN_TOKEN_CHARS_MIN || /\s/.test(token)) {
    throw new ConfigError(`${what} must be at least ${ADMIN_TOKEN_CHARS_MIN} characters without whitespace`)
  }
}
