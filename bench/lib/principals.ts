/**
 * Bench principals: ed25519 keys from node:crypto, enrolled over the hub's HTTP API as an
 * operator would (POST /v1/devices with the admin token), and CONNECT passwords signed
 * ahead of time so the generator spends no CPU on them during a measured phase.
 */
import { generateKeyPairSync, sign } from 'node:crypto'
import { buildConnectPassword, principalIdFromPublicKey, type Signer } from '../../src/protocol/index.js'

export type Role = 'device' | 'service'

export interface BenchPrincipal {
  id: string
  role: Role
  publicKeyHex: string
  sign: Signer
}

export function makePrincipal (role: Role): BenchPrincipal {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519')
  const raw = new Uint8Array(Buffer.from(publicKey.export({ format: 'jwk' }).x as string, 'base64url'))
  return {
    id: principalIdFromPublicKey(raw),
    role,
    publicKeyHex: Buffer.from(raw).toString('hex'),
    sign: (message: Uint8Array) => new Uint8Array(sign(null, message, privateKey)),
  }
}

export interface HubAdmin {
  httpPort: number
  adminToken: string
}

async function enrol (admin: HubAdmin, principal: BenchPrincipal): Promise<void> {
  const res = await fetch(`http://127.0.0.1:${admin.httpPort}/v1/devices`, {
    method: 'POST',
    headers: { authorization: `Bearer ${admin.adminToken}`, 'content-type': 'application/json' },
    body: JSON.stringify({ publicKey: principal.publicKeyHex, role: principal.role }),
    signal: AbortSignal.timeout(10_000),
  })
  if (res.status !== 201) throw new Error(`enrolment failed: ${res.status} ${await res.text()}`)
  const { id } = await res.json() as { id: string }
  if (id !== principal.id) throw new Error(`hub gave id ${id}, expected ${principal.id}`)
}

/** Makes and enrols `count` principals, a few requests at a time. */
export async function enrolMany (admin: HubAdmin, role: Role, count: number, concurrency = 16): Promise<BenchPrincipal[]> {
  const principals = Array.from({ length: count }, () => makePrincipal(role))
  await forEachLimited(principals, concurrency, p => enrol(admin, p))
  return principals
}

/** A fresh 88-byte CONNECT password (new nonce, current time). */
export function connectPassword (principal: BenchPrincipal): Buffer {
  return Buffer.from(buildConnectPassword(principal.id, principal.sign))
}

/** Runs `fn` over the items with at most `limit` in flight. */
export async function forEachLimited<T> (items: readonly T[], limit: number, fn: (item: T, index: number) => Promise<void>): Promise<void> {
  let next = 0
  const lane = async (): Promise<void> => {
    while (next < items.length) {
      const index = next++
      await fn(items[index], index)
    }
  }
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, lane))
}
