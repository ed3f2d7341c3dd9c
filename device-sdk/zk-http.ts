/**
 * Plain, unauthenticated HTTP for the ZK side of the SDK. Leaf sync and claims must not say
 * who is asking: no signature, no token, no cookies (`credentials: 'omit'` in browsers),
 * no referrer. Only what the request itself carries reaches the hub (and the client's
 * network address, which this code cannot hide).
 */
import { ArgumentError, HttpError } from './errors.js'

export interface AnonymousHttpOptions {
  /** The hub's HTTP base URL, e.g. `https://hub.example.com`. */
  baseUrl: string
  /** A fetch to use instead of the global one (tests, proxies, Tor). */
  fetch?: typeof fetch
  /** Per request; default 30 s. */
  timeoutMs?: number
}

export interface AnonymousResponse {
  status: number
  headers: Headers
  /** The parsed JSON body; undefined when empty. */
  json: unknown
}

const TIMEOUT_MS_DEFAULT = 30_000

export class AnonymousHttp {
  readonly baseUrl: string
  readonly #fetch: typeof fetch
  readonly #timeoutMs: number

  constructor (options: AnonymousHttpOptions) {
    if (typeof options?.baseUrl !== 'string' || !/^https?:\/\//.test(options.baseUrl)) {
      throw new ArgumentError(`baseUrl expected an http(s) URL, got ${String(options?.baseUrl)}`)
    }
    const timeoutMs = options.timeoutMs ?? TIMEOUT_MS_DEFAULT
    if (!Number.isSafeInteger(timeoutMs) || timeoutMs < 1) throw new ArgumentError(`timeoutMs expected a positive integer, got ${String(timeoutMs)}`)
    this.baseUrl = options.baseUrl.replace(/\/+$/, '')
    this.#fetch = options.fetch ?? globalThis.fetch.bind(globalThis)
    this.#timeoutMs = timeoutMs
  }

  /** One request; resolves with any status (the caller decides what a refusal means). */
  async send (method: 'GET' | 'POST', target: string, body?: unknown): Promise<AnonymousResponse> {
    const text = body === undefined ? undefined : JSON.stringify(body)
    const response = await this.#fetch(this.baseUrl + target, {
      method,
      headers: text === undefined ? {} : { 'content-type': 'application/json' },
      body: text,
      credentials: 'omit',
      referrerPolicy: 'no-referrer',
      cache: 'no-store',
      signal: AbortSignal.timeout(this.#timeoutMs),
    })
    const answer = await response.text()
    let json: unknown
    try {
      json = answer === '' ? undefined : JSON.parse(answer) as unknown
    } catch {
      throw new HttpError(response.status, 'MN_ERR_HTTP', `${method} ${target}: the answer is not JSON`)
    }
    return { status: response.status, headers: response.headers, json }
  }

  /** A GET that must succeed: the parsed body, or HttpError. */
  async get (target: string): Promise<unknown> {
    const answer = await this.send('GET', target)
    if (answer.status < 200 || answer.status > 299) throw httpError(answer)
    return answer.json
  }
}

/** The hub's error body ({ code, message }) as an HttpError. */
export function httpError (answer: AnonymousResponse): HttpError {
  const error = (answer.json ?? {}) as { code?: unknown, message?: unknown }
  return new HttpError(answer.status, typeof error.code === 'string' ? error.code : 'MN_ERR_HTTP', typeof error.message === 'string' ? error.message : `status ${answer.status}`)
}
