/**
 * A small Fastify app with the cage plugin over real SQLite and real HTTP. The identity hook
 * here is test scaffolding standing in for the hub's (src/http/identity.ts): it takes the
 * caller's identity from the `x-test-identity` header.
 */
import type { TestContext } from 'node:test'
import Fastify, { type FastifyInstance } from 'fastify'
import { AuditLog } from '../../src/cage/audit.js'
import type { BlockedLogLimits, BlockedRequestLog } from '../../src/cage/blocked-log.js'
import type { Identity } from '../../src/cage/identity.js'
import { cage } from '../../src/cage/plugin.js'
import { PolicyStore } from '../../src/cage/policy-store.js'
import type { RuleSpec } from '../../src/cage/policy.js'
import { UnauthorizedError } from '../../src/errors.js'
import { errorBody, routeNotFound, toMetanodeError } from '../../src/http/error-reply.js'
import { tempDb } from './helpers.js'
import type { SqliteSql } from '../../src/store/index.js'

export const DEVICE_ID = 'd'.repeat(32)
export const SERVICE_ID = 'e'.repeat(32)
export const BODY_LIMIT_BYTES = 1024

export interface CageOptions {
  rules?: RuleSpec[]
  seedDefaults?: boolean
  blockedLog?: Partial<BlockedLogLimits>
  /** Made over the app's audit log when given. */
  blockedRequests?: (audit: AuditLog) => BlockedRequestLog
  /** Listen on this host (default 127.0.0.1). */
  host?: string
}

export interface CallOptions {
  /** 'admin' (default), 'anonymous', 'device' or 'service'. */
  as?: 'admin' | 'anonymous' | 'device' | 'service'
  body?: unknown
  headers?: Record<string, string>
  /** Connect to this host instead of the one listened on. */
  host?: string
}

export interface Answer {
  status: number
  headers: Headers
  body: any
}

export interface CageApp {
  app: FastifyInstance
  audit: AuditLog
  policies: PolicyStore
  file: string
  /** The cage's database, for edits behind its back (tamper). */
  sql: SqliteSql
  url: string
  call (method: string, path: string, options?: CallOptions): Promise<Answer>
}

const IDENTITIES: Record<string, Identity> = {
  admin: { kind: 'admin' },
  anonymous: { kind: 'anonymous' },
  device: { kind: 'principal', id: DEVICE_ID, role: 'device' },
  service: { kind: 'principal', id: SERVICE_ID, role: 'service' },
}

export async function startCage (t: TestContext, options: CageOptions = {}): Promise<CageApp> {
  const { sql, file } = await tempDb(t)
  const audit = new AuditLog(sql)
  const policies = await PolicyStore.open(sql, { audit, seedDefaults: options.seedDefaults ?? false })
  if (options.rules !== undefined) await policies.replaceAll(options.rules, { actor: 'hub' })
  // The hub's server settings that matter here: no coercion, unknown properties are a 400,
  // and its error replies.
  const app = Fastify({
    bodyLimit: BODY_LIMIT_BYTES,
    ajv: { customOptions: { coerceTypes: false, removeAdditional: false, allErrors: false } },
  })
  app.setErrorHandler((err, _request, reply) => {
    const coded = toMetanodeError(err, BODY_LIMIT_BYTES)
    reply.code(coded.statusCode).send(errorBody(coded))
  })
  app.setNotFoundHandler(routeNotFound)
  app.decorateRequest('identity', null as never)
  app.addHook('onRequest', async (request) => {
    request.identity = IDENTITIES[String(request.headers['x-test-identity'] ?? 'anonymous')]
  })
  app.register(cage, { policies, audit, blockedLog: options.blockedLog, blockedRequests: options.blockedRequests?.(audit) })
  app.get('/healthz', async () => ({ status: 'ok' }))
  app.get('/open', async () => ({ ok: true }))
  app.get('/v1/things/:id', async (request) => ({ id: (request.params as { id: string }).id }))
  app.post('/v1/things', async (request) => ({ got: request.body }))
  // Like the hub's admin-only route plugins: its own guard, registered after the cage.
  app.register(async (child) => {
    child.addHook('onRequest', async (request) => {
      if (request.identity.kind !== 'admin') throw new UnauthorizedError('this route needs the admin token')
    })
    child.get('/v1/guarded', async () => ({ guarded: true }))
  })
  t.after(async () => {
    await app.close()
    await policies.close()
  })
  const host = options.host ?? '127.0.0.1'
  await app.listen({ port: 0, host })
  const { port } = app.server.address() as { port: number }
  const url = `http://127.0.0.1:${port}`
  async function call (method: string, path: string, callOptions: CallOptions = {}): Promise<Answer> {
    const headers: Record<string, string> = { 'x-test-identity': callOptions.as ?? 'admin', ...callOptions.headers }
    const init: RequestInit = { method, headers, redirect: 'manual' }
    if (callOptions.body !== undefined) {
      init.body = typeof callOptions.body === 'string' ? callOptions.body : JSON.stringify(callOptions.body)
      headers['content-type'] ??= 'application/json'
    }
    const base = callOptions.host === undefined ? url : `http://${callOptions.host}:${port}`
    const response = await fetch(base + path, init)
    const text = await response.text()
    return { status: response.status, headers: response.headers, body: text === '' ? undefined : JSON.parse(text) }
  }
  return { app, audit, policies, file, sql, url, call }
}
