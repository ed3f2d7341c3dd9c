/**
 * The benchmarked requests as raw HTTP/1.1 bytes: GET and PATCH of a device's state
 * document, with the admin token or signed by a service principal (docs/protocol.md §8.1).
 * Lane i (one keep-alive connection) reads and patches device i; signed lanes sign as
 * service i, one key per connection like a pool of backend workers, which also keeps each
 * key's nonces well under the hub's per-principal replay cap (50,000).
 *
 * Every signed request needs a fresh nonce, so signed requests are signed here in pools,
 * before the phase that sends them, and never while the clock runs.
 */
import { signHttpRequest } from '../../src/protocol/index.js'
import type { BenchPrincipal } from '../lib/principals.js'
import { USER_AGENT, type RequestShape } from './rules.js'

export type Auth = 'admin' | 'signed'
export type Method = 'GET' | 'PATCH'

export interface Scenario {
  slug: string
  label: string
  auth: Auth
  method: Method
}

export const SCENARIOS: readonly Scenario[] = [
  { slug: 'admin-get', label: 'GET state, admin token', auth: 'admin', method: 'GET' },
  { slug: 'admin-patch', label: 'PATCH state, admin token', auth: 'admin', method: 'PATCH' },
  { slug: 'signed-get', label: 'GET state, service-signed', auth: 'signed', method: 'GET' },
  { slug: 'signed-patch', label: 'PATCH state, service-signed', auth: 'signed', method: 'PATCH' },
]

export interface Target {
  port: number
  adminToken: string
  devices: BenchPrincipal[]
  services: BenchPrincipal[]
}

export function statePath (deviceId: string): string {
  return `/v1/devices/${deviceId}/state`
}

function requestBytes (port: number, method: Method, target: string, headers: Record<string, string>, body?: string): Buffer {
  let head = `${method} ${target} HTTP/1.1\r\nhost: 127.0.0.1:${port}\r\nuser-agent: ${USER_AGENT}\r\naccept: application/json\r\n`
  for (const [name, value] of Object.entries(headers)) head += `${name}: ${value}\r\n`
  if (body === undefined) return Buffer.from(`${head}\r\n`, 'latin1')
  return Buffer.from(`${head}content-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`)
}

/** A small desired patch; the value changes on every request, so every PATCH is a real change (a new version, a delta sent). */
function patchBody (value: number): string {
  return `{"desired":{"setpoint":${value}}}`
}

/** The request shapes the rules are checked against (rules.ts), one per scenario. */
export function requestShapes (target: Target): RequestShape[] {
  const url = statePath(target.devices[0].id)
  const service = target.services[0]
  const headers = { host: '127.0.0.1', 'user-agent': USER_AGENT, accept: 'application/json' }
  return SCENARIOS.map(s => ({
    method: s.method,
    url,
    identity: s.auth === 'admin' ? { kind: 'admin' } : { kind: 'principal', id: service.id, role: 'service' },
    headers: s.method === 'PATCH' ? { ...headers, 'content-type': 'application/json', 'content-digest': 'sha-256=:x:' } : headers,
  }))
}

/** Requests of one scenario for every lane: built on the fly (admin) or from signed pools. */
export class RequestSource {
  readonly scenario: Scenario
  readonly #target: Target
  readonly #lanes: number
  // Per lane: the next setpoint (PATCH), the signed pool and its read position.
  readonly #values: number[]
  #pools: Buffer[][]
  #positions: number[]
  readonly #fixedGets: Buffer[]

  constructor (scenario: Scenario, target: Target, lanes: number) {
    if (target.devices.length < lanes || target.services.length < lanes) throw new Error(`need ${lanes} devices and services, have ${target.devices.length} and ${target.services.length}`)
    this.scenario = scenario
    this.#target = target
    this.#lanes = lanes
    this.#values = Array.from({ length: lanes }, () => 0)
    this.#pools = Array.from({ length: lanes }, () => [])
    this.#positions = Array.from({ length: lanes }, () => 0)
    // An admin GET is the same bytes every time.
    this.#fixedGets = Array.from({ length: lanes }, (_, i) =>
      requestBytes(target.port, 'GET', statePath(target.devices[i].id), { authorization: `Bearer ${target.adminToken}` }))
  }

  /**
   * Signs `perLane` fresh requests for each lane (signed scenarios; a no-op for admin ones),
   * replacing what was left of the previous pool: its timestamps are getting old.
   */
  presign (perLane: number): void {
    if (this.scenario.auth !== 'signed') return
    const { port, devices, services } = this.#target
    this.#pools = Array.from({ length: this.#lanes }, (_, lane) => {
      const target = statePath(devices[lane].id)
      const service = services[lane]
      return Array.from({ length: perLane }, () => {
        const body = this.scenario.method === 'PATCH' ? patchBody(++this.#values[lane]) : undefined
        const headers = signHttpRequest(service.id, service.sign, { method: this.scenario.method, target, body })
        return requestBytes(port, this.scenario.method, target, headers, body)
      })
    })
    this.#positions = this.#positions.map(() => 0)
  }

  /** The next request of a lane, or null when its signed pool is spent. */
  readonly next = (lane: number): Buffer | null => {
    const { auth, method } = this.scenario
    if (auth === 'signed') {
      const pool = this.#pools[lane]
      const position = this.#positions[lane]
      if (position >= pool.length) return null
      this.#positions[lane] = position + 1
      return pool[position]
    }
    if (method === 'GET') return this.#fixedGets[lane]
    const { port, devices, adminToken } = this.#target
    return requestBytes(port, 'PATCH', statePath(devices[lane].id), { authorization: `Bearer ${adminToken}` }, patchBody(++this.#values[lane]))
  }
}
