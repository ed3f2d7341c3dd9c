/**
 * The hub's HTTP API, called with the principal's own key (docs/protocol.md §8.1): each
 * request is signed over its method, target, time, a fresh nonce and the body's digest,
 * so no token is ever stored on the device. Works in Node 20+ and browsers (fetch).
 */
import { signHttpRequest } from '../src/protocol/index.js'
import { signerFor, type KeyPair } from './keys.js'
import { ArgumentError, HttpError } from './errors.js'

export interface HttpClientOptions {
  /** The hub's HTTP base URL, e.g. `https://hub.example.com` or `http://localhost:8080`. */
  baseUrl: string
  keyPair: KeyPair
  /** A fetch to use instead of the global one (tests, custom agents). */
  fetch?: typeof fetch
}

export class HubHttpClient {
  readonly #baseUrl: string
  readonly #keyPair: KeyPair
  readonly #sign: ReturnType<typeof signerFor>
  readonly #fetch: typeof fetch

  constructor (options: HttpClientOptions) {
    if (typeof options?.baseUrl !== 'string' || !/^https?:\/\//.test(options.baseUrl)) {
      throw new ArgumentError(`baseUrl expected an http(s) URL, got ${String(options?.baseUrl)}`)
    }
    this.#baseUrl = options.baseUrl.replace(/\/+$/, '')
    this.#keyPair = options.keyPair
    this.#sign = signerFor(options.keyPair)
    this.#fetch = options.fetch ?? globalThis.fetch.bind(globalThis)
  }

  /** Sends one signed request; resolves with the parsed JSON body, rejects with HttpError. */
  async request<T = unknown> (method: string, target: string, body?: unknown): Promise<T> {
    if (!target.startsWith('/')) throw new ArgumentError(`target expected a path starting with "/", got ${target}`)
    const upper = method.toUpperCase()
    const text = body === undefined ? undefined : JSON.stringify(body)
    const headers = signHttpRequest(this.#keyPair.id, this.#sign, { method: upper, target, body: text })
    if (text !== undefined) headers['content-type'] = 'application/json'
    const response = await this.#fetch(this.#baseUrl + target, { method: upper, headers, body: text })
    const answer = await response.text()
    const json = answer === '' ? undefined : JSON.parse(answer) as unknown
    if (!response.ok) {
      const error = (json ?? {}) as { code?: string, message?: string }
      throw new HttpError(response.status, error.code ?? 'MN_ERR_HTTP', error.message ?? response.statusText)
    }
    return json as T
  }

  /** Who the hub takes this key for (GET /v1/me). */
  me (): Promise<{ kind: string, principal?: { id: string, role: string, name: string | null } }> {
    return this.request('GET', '/v1/me')
  }
}
