import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Writable } from 'node:stream'
import type { TestContext } from 'node:test'
import { keygenAsync } from '@noble/ed25519'
import { pino, type Logger } from 'pino'
import { createHttpServer, type HttpServerOptions } from '../../src/http/server.js'
import { openStore, type Store } from '../../src/store/index.js'

export const TOKEN = 'test-admin-token-0123456789abcdef'

/** A logger whose lines are kept, so tests can assert what was (not) logged. */
export function captureLogger (): { log: Logger, lines: string[] } {
  const lines: string[] = []
  const stream = new Writable({
    write (chunk, _encoding, callback) {
      lines.push(String(chunk))
      callback()
    },
  })
  return { log: pino({ level: 'trace' }, stream), lines }
}

export async function tempDir (t: TestContext): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'metanode-http-'))
  t.after(() => rm(dir, { recursive: true, force: true }))
  return dir
}

export interface Hub {
  url: string
  port: number
  store: Store
  lines: string[]
  revoked: string[]
  call (method: string, path: string, options?: CallOptions): Promise<Answer>
}

export interface CallOptions {
  /** null sends no Authorization header. */
  token?: string | null
  /** An object is sent as JSON; a string as it is. */
  body?: unknown
  headers?: Record<string, string>
}

export interface Answer {
  status: number
  headers: Headers
  body: any
}

/** A real store in a temp dir and the real server on an ephemeral port, both closed after the test. */
export async function startHub (t: TestContext, options: Partial<HttpServerOptions> = {}): Promise<Hub> {
  const dir = await tempDir(t)
  const store = await openStore({ file: join(dir, 'hub.db') })
  const { log, lines } = captureLogger()
  const revoked: string[] = []
  const app = createHttpServer({
    store,
    adminToken: TOKEN,
    log,
    onRevoke: (id) => { revoked.push(id) },
    ...options,
  })
  t.after(async () => {
    await app.close()
    await store.close()
  })
  await app.listen({ port: 0, host: '127.0.0.1' })
  const { port } = app.server.address() as { port: number }
  const url = `http://127.0.0.1:${port}`
  async function call (method: string, path: string, callOptions: CallOptions = {}): Promise<Answer> {
    const { token = TOKEN, body, headers = {} } = callOptions
    const init: RequestInit = { method, headers: { ...headers } }
    const sent = init.headers as Record<string, string>
    if (token !== null) sent.authorization ??= `Bearer ${token}`
    if (body !== undefined) {
      init.body = typeof body === 'string' ? body : JSON.stringify(body)
      sent['content-type'] ??= 'application/json'
    }
    const response = await fetch(url + path, init)
    const text = await response.text()
    return { status: response.status, headers: response.headers, body: text === '' ? undefined : JSON.parse(text) }
  }
  return { url, port, store, lines, revoked, call }
}

export async function newPublicKeyHex (): Promise<string> {
  return Buffer.from((await keygenAsync()).publicKey).toString('hex')
}
