/**
 * Shared by the protocol tests: fixed keys, signers (noble and node:crypto), strict cborg
 * decoding, and a tiny CBOR writer for hand-made bytes (every head width, indefinite
 * lengths, floats where integers belong), so that rejections are tested on exact bytes
 * rather than on what our own encoder happens to produce.
 */
import { createPrivateKey, createPublicKey, sign as nodeSign, verify as nodeVerify } from 'node:crypto'
import * as ed from '@noble/ed25519'
import { sha512 } from '@noble/hashes/sha2.js'
import { decode as cborgDecode } from 'cborg'
import { concatBytes, fromHex, principalIdFromPublicKey, toHex, type Signer } from '../../src/protocol/index.js'

ed.hashes.sha512 = sha512

/** Device secret key 0x01..0x20, hub secret key 0x21..0x40 (the docs' examples use them). */
export const DEVICE_SECRET = Uint8Array.from({ length: 32 }, (_, i) => i + 1)
export const HUB_SECRET = Uint8Array.from({ length: 32 }, (_, i) => i + 0x21)
export const DEVICE_PUBLIC = ed.getPublicKey(DEVICE_SECRET)
export const HUB_PUBLIC = ed.getPublicKey(HUB_SECRET)
export const DEVICE_ID = principalIdFromPublicKey(DEVICE_PUBLIC)
export const HUB_ID = principalIdFromPublicKey(HUB_PUBLIC)
/** 2026-01-01T00:00:00Z. */
export const T0 = 1767225600000
export const SKEW_MS = 120_000
export const MAX = 64 * 1024

/** 16 bytes start, start+1, ... */
export function seq16 (start: number): Uint8Array {
  return Uint8Array.from({ length: 16 }, (_, i) => (start + i) & 0xff)
}

export function nobleSigner (secret: Uint8Array): Signer {
  return (message) => ed.sign(message, secret)
}

const PKCS8_ED25519_PREFIX = fromHex('302e020100300506032b657004220420')
const SPKI_ED25519_PREFIX = fromHex('302a300506032b6570032100')

/** Signs with node:crypto (OpenSSL), from the same raw 32-byte secret. */
export function nodeSigner (secret: Uint8Array): Signer {
  const key = createPrivateKey({ key: Buffer.from(concatBytes(PKCS8_ED25519_PREFIX, secret)), format: 'der', type: 'pkcs8' })
  return (message) => new Uint8Array(nodeSign(null, message, key))
}

export function nodeVerifyRaw (publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): boolean {
  const key = createPublicKey({ key: Buffer.from(concatBytes(SPKI_ED25519_PREFIX, publicKey)), format: 'der', type: 'spki' })
  return nodeVerify(null, message, key, signature)
}

/** A tag-18 marker for what cborg decodes. */
export class Cose18 {
  constructor (readonly content: unknown) {}
}

/**
 * cborg, an independent decoder, at its strictest: shortest integer and length forms, no
 * indefinite lengths, no undefined, no duplicate keys, no tags but 18.
 */
export function strictDecode (bytes: Uint8Array): unknown {
  const tags = { 18: (decodeContent: () => unknown) => new Cose18(decodeContent()) }
  return cborgDecode(bytes, {
    strict: true,
    useMaps: true,
    rejectDuplicateMapKeys: true,
    allowIndefinite: false,
    allowUndefined: false,
    tags,
  })
}

export const hex = toHex
export const unhex = (text: string): Uint8Array => fromHex(text.replace(/\s+/g, ''))

// A hand-made CBOR writer. Each function returns the bytes of one item.

type Width = 0 | 1 | 2 | 4 | 8

function head (major: number, value: number | bigint, width?: Width): Uint8Array {
  const big = BigInt(value)
  const w: Width = width ?? (big < 24n ? 0 : big < 0x100n ? 1 : big < 0x10000n ? 2 : big < 0x100000000n ? 4 : 8)
  if (w === 0) return Uint8Array.of((major << 5) | Number(big))
  const info = { 1: 24, 2: 25, 4: 26, 8: 27 }[w]
  const out = new Uint8Array(1 + w)
  out[0] = (major << 5) | info
  for (let i = 0; i < w; i++) out[w - i] = Number((big >> BigInt(8 * i)) & 0xffn)
  return out
}

export const c = {
  uint: (value: number | bigint, width?: Width) => head(0, value, width),
  nint: (value: number | bigint, width?: Width) => head(1, -1n - BigInt(value), width),
  bstr: (bytes: Uint8Array) => concatBytes(head(2, bytes.length), bytes),
  tstr: (text: string) => {
    const bytes = new TextEncoder().encode(text)
    return concatBytes(head(3, bytes.length), bytes)
  },
  /** An indefinite-length string of the given chunks (major 2 or 3 from the chunks' own heads). */
  chunked: (major: 2 | 3, ...chunks: Uint8Array[]) => concatBytes(Uint8Array.of((major << 5) | 31), ...chunks, Uint8Array.of(0xff)),
  array: (...items: Uint8Array[]) => concatBytes(head(4, items.length), ...items),
  arrayIndef: (...items: Uint8Array[]) => concatBytes(Uint8Array.of(0x9f), ...items, Uint8Array.of(0xff)),
  map: (...pairs: Array<[Uint8Array, Uint8Array]>) => concatBytes(head(5, pairs.length), ...pairs.flat()),
  mapIndef: (...pairs: Array<[Uint8Array, Uint8Array]>) => concatBytes(Uint8Array.of(0xbf), ...pairs.flat(), Uint8Array.of(0xff)),
  tag: (tag: number, content: Uint8Array) => concatBytes(head(6, tag), content),
  f64: (value: number) => {
    const out = new Uint8Array(9)
    out[0] = 0xfb
    new DataView(out.buffer).setFloat64(1, value)
    return out
  },
  f16one: () => Uint8Array.of(0xf9, 0x3c, 0x00),
  true: () => Uint8Array.of(0xf5),
  false: () => Uint8Array.of(0xf4),
  null: () => Uint8Array.of(0xf6),
  undefined: () => Uint8Array.of(0xf7),
  raw: (text: string) => unhex(text),
}

/** The fields of a valid StatusUpdate envelope, as [key bytes, value bytes] pairs to edit in tests. */
export function envelopePairs (overrides: Record<number, Uint8Array | null> = {}): Array<[Uint8Array, Uint8Array]> {
  const base: Record<number, Uint8Array> = {
    0: c.uint(1),
    1: c.uint(1),
    2: c.bstr(seq16(0xa0)),
    3: c.tstr(DEVICE_ID),
    5: c.uint(T0),
    7: c.map([c.tstr('temp'), c.uint(21)]),
  }
  const merged: Record<number, Uint8Array | null> = { ...base, ...overrides }
  return Object.entries(merged)
    .filter((entry): entry is [string, Uint8Array] => entry[1] !== null)
    .map(([key, value]) => [c.uint(Number(key)), value])
}

export function envelopeBytes (overrides: Record<number, Uint8Array | null> = {}): Uint8Array {
  return c.map(...envelopePairs(overrides))
}
