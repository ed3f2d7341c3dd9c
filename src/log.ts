import { pino, type Logger, type DestinationStream } from 'pino'

export type { Logger }

/**
 * The root logger. Components take `log.child({ component })`. Secrets are redacted by
 * path so that a careless `log.info({ headers })` cannot leak a token or password.
 */
export function createLogger (level: string, destination?: DestinationStream): Logger {
  return pino({
    level,
    base: { app: 'metanode' },
    redact: {
      paths: [
        'password', '*.password', 'token', '*.token', 'adminToken', '*.adminToken',
        'authorization', '*.authorization', 'headers.authorization', 'req.headers.authorization',
        'secretKey', '*.secretKey',
      ],
      censor: '[redacted]',
    },
  }, destination)
}

/** A server URL (Redis, PostgreSQL) without its password, for logs. */
export function redactUrl (url: string): string {
  try {
    const u = new URL(url)
    if (u.password) u.password = '***'
    return u.toString()
  } catch {
    return '(unparsable url)'
  }
}
