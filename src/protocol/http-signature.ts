/**
 * Principal-signed HTTP requests (docs/protocol.md §8.1): a device, app or service calls
 * the HTTP API with its ed25519 key instead of a bearer token, under the same skew window
 * and replay guard as its MQTT CONNECT.
 *
 *   Authorization: MN1-Ed25519 id=<principal id>, ts=<ms>, nonce=<32 hex>, sig=<128 hex>
 *   Content-Digest: sha-256=:<base64 of SHA-256(body)>:      (RFC 9530; when there is a body)
 *
 * The signature is over "mn1/http" ‖ 0x00 ‖ METHOD ‖ 0x00 ‖ target ‖ 0x00 ‖ ts (8 bytes,
 * big-endian) ‖ nonce (16 bytes) ‖ SHA-256(body) (32 bytes; of the empty string when there
 * is no body), where target is the request target exactly as sent (path and query). The
 * digest is signed, so the hub can check the signature before it reads a byte of the body.
 */
import { sha256 } from '@noble/hashes/sha2.js'
import { randomBytes } from '@noble/hashes/utils.js'
import { assertBytes, concatBytes, describe, fromHex, toHex, utf8Bytes } from './bytes.js'
import { isPrincipalId, assertPrincipalId } from './ids.js'
import type { Signer } from './cose.js'

export const HTTP_AUTH_SCHEME = 'MN1-Ed25519'
const CONTEXT = utf8Bytes('mn1/http\0')
const ZERO = new Uint8Array([0])
const NONCE_BYTES = 16
const SIGNATURE_BYTES = 64
/** SHA-256 of no bytes: the digest of a request without a body. */
export const EMPTY_BODY_DIGEST: Uint8Array = sha256(new Uint8Array(0))

export interface HttpAuthorization {
  id: string
  ts: number
  nonce: Uint8Array
  signature: Uint8Array
}

/** The bytes a principal signs for one request. */
export function httpSigningInput (method: string, target: string, ts: number, nonce: Uint8Array, bodyDigest: Uint8Array): Uint8Array {
  if (typeof method !== 'string' || !/^[A-Z]+$/.test(method)) throw new TypeError(`method expected an upper-case HTTP method, got ${describe(method)}`)
  if (typeof target !== 'string' || !target.startsWith('/')) throw new TypeError(`target expected a path starting with "/", got ${describe(target)}`)
  if (!Number.isSafeInteger(ts) || ts < 0) throw new TypeError(`ts expected a non-negative integer (ms), got ${String(ts)}`)
  assertBytes('nonce', nonce, NONCE_BYTES)
  assertBytes('bodyDigest', bodyDigest, 32)
  const tsBytes = new Uint8Array(8)
  new DataView(tsBytes.buffer).setBigUint64(0, BigInt(ts))
  return concatBytes(CONTEXT, utf8Bytes(method), ZERO, utf8Bytes(target), ZERO, tsBytes, nonce, bodyDigest)
}

/** SHA-256 of a request body (or of nothing). */
export function bodyDigest (body?: Uint8Array | string): Uint8Array {
  if (body === undefined) return EMPTY_BODY_DIGEST
  return sha256(typeof body === 'string' ? utf8Bytes(body) : body)
}

/** The Content-Digest header value (RFC 9530) for a body digest. */
export function contentDigestHeader (digest: Uint8Array): string {
  assertBytes('digest', digest, 32)
  let binary = ''
  for (const byte of digest) binary += String.fromCharCode(byte)
  return `sha-256=:${btoa(binary)}:`
}

/** The SHA-256 digest in a Content-Digest header, or null when it has none or is malformed. */
export function parseContentDigest (header: string | undefined): Uint8Array | null {
  if (typeof header !== 'string') return null
  const match = /(?:^|,)\s*sha-256=:([A-Za-z0-9+/]{43}=):\s*(?:,|$)/.exec(header)
  if (!match) return null
  const binary = atob(match[1])
  const out = new Uint8Array(binary.length)
  for (let i = 0; i < binary.length; i++) out[i] = binary.charCodeAt(i)
  return out.length === 32 ? out : null
}

/**
 * The headers that sign one request: `authorization`, and `content-digest` when there is a
 * body. Give the body exactly as it will be sent.
 */
export function signHttpRequest (id: string, sign: Signer, request: { method: string, target: string, body?: Uint8Array | string, ts?: number, nonce?: Uint8Array }): Record<string, string> {
  assertPrincipalId('id', id)
  const ts = request.ts ?? Date.now()
  const nonce = request.nonce ?? randomBytes(NONCE_BYTES)
  const digest = bodyDigest(request.body)
  const signature = sign(httpSigningInput(request.method, request.target, ts, nonce, digest))
  assertBytes('signature returned by sign', signature, SIGNATURE_BYTES)
  const headers: Record<string, string> = {
    authorization: `${HTTP_AUTH_SCHEME} id=${id}, ts=${ts}, nonce=${toHex(nonce)}, sig=${toHex(signature)}`,
  }
  if (request.body !== undefined) headers['content-digest'] = contentDigestHeader(digest)
  return headers
}

/** Reads an MN1-Ed25519 Authorization header; null when it is not one, or is malformed. Never throws. */
export function parseHttpAuthorization (header: unknown): HttpAuthorization | null {
  if (typeof header !== 'string' || header.length > 512) return null
  const match = /^MN1-Ed25519 +(.*)$/i.exec(header.trim())
  if (!match) return null
  const params = new Map<string, string>()
  for (const part of match[1].split(',')) {
    const eq = part.indexOf('=')
    if (eq < 0) return null
    const key = part.slice(0, eq).trim().toLowerCase()
    if (params.has(key)) return null
    params.set(key, part.slice(eq + 1).trim())
  }
  const id = params.get('id')
  const ts = params.get('ts')
  const nonce = params.get('nonce')
  const sig = params.get('sig')
  if (!isPrincipalId(id) || ts === undefined || !/^[0-9]{1,16}$/.test(ts)) return null
  if (nonce === undefined || !/^[0-9a-f]{32}$/.test(nonce) || sig === undefined || !/^[0-9a-f]{128}$/.test(sig)) return null
  const tsMs = Number(ts)
  if (!Number.isSafeInteger(tsMs)) return null
  return { id, ts: tsMs, nonce: fromHex(nonce), signature: fromHex(sig) }
}
