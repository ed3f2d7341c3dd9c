/**
 * Runs an admin action and writes its audit entry (who, what, when, from where) in one
 * transaction, when the server has an audit log; otherwise just runs it.
 */
import type { FastifyRequest } from 'fastify'
import { requestAuditContext, type AuditLog } from '../cage/index.js'

export function audited<T> (
  audit: AuditLog | undefined,
  request: FastifyRequest,
  action: string,
  change: () => T | Promise<T>,
  describe: (result: T) => { target?: string | null, detail?: Record<string, unknown> },
): Promise<T> {
  if (!audit) return Promise.resolve(change())
  return audit.recorded(change, result => ({ ...requestAuditContext(request), action, ...describe(result) }))
}
