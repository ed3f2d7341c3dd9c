/**
 * Plain CBOR (RFC 8949, no extensions) with cbor-x underneath.
 *
 * cbor-x's defaults are not plain CBOR: `new Encoder()` writes records (tag 57343),
 * `encode()` tags Uint8Array (tag 64), a Map gets tag 259 once records are off, a plain
 * object gets a 3-byte map head, integers beyond 32 bits become float64, undefined is
 * written as simple 23 and a Date as tag 1. So values are first checked and normalised
 * here (integers to their exact width, everything we cannot write plainly refused with a
 * TypeError that names where it is), and cbor-x is configured to write what is left
 * plainly. The output is preferred serialisation for integers and lengths, which any
 * strict decoder accepts.
 *
 * Decoding is only ever done on bytes that cbor-scan has walked strictly, so no tag other
 * than the bignums 2 and 3 reaches cbor-x and no decoder state (records, shared
 * structures) can be defined by one message and used by the next.
 */
import { Decoder, Encoder, type Options } from 'cbor-x'
import { concatBytes, describe, plainView } from './bytes.js'
import { CBOR_DEPTH_MAX } from './constants.js'
import { ProtocolError } from './errors.js'
import { CborScanError, newScanStats, readHead, stringContent, walkWhole, type ScanStats } from './cbor-scan.js'

// useTag259ForMaps is an option of cbor-x that its typings lack.
const encoderOptions: Options & { useTag259ForMaps: boolean } = {
  useRecords: false,
  tagUint8Array: false,
  useTag259ForMaps: false,
  variableMapSize: true,
  pack: false,
  bundleStrings: false,
  structuredClone: false,
  useFloat32: 0,
  largeBigIntToFloat: false,
  useToJSON: false,
}
const encoder = new Encoder(encoderOptions)
const objectDecoder = new Decoder({ useRecords: false, mapsAsObjects: true, copyBuffers: true, bundleStrings: false })
const mapDecoder = new Decoder({ useRecords: false, mapsAsObjects: false, copyBuffers: true, bundleStrings: false })

const TWO_POW_32 = 0x1_0000_0000
const BIG_TWO_POW_32 = 0x1_0000_0000n
const BIG_TWO_POW_64 = 0x1_0000_0000_0000_0000n
const LONE_SURROGATE = /[\uD800-\uDFFF]/u

/**
 * Encodes a value as plain CBOR:
 * - null, booleans, text strings; Uint8Array (and Buffer) as byte strings (major type 2);
 * - safe integers and bigints as integers (major type 0/1) in their shortest form, never as
 *   floats; bigints beyond 64 bits as bignums (tags 2/3); other numbers as float64;
 * - arrays; Maps (any encodable keys) and plain objects (text keys) as maps. Object
 *   properties that are undefined are left out, as JSON.stringify does.
 * (The one exception to shortest forms: cbor-x writes -2^64 as a bignum although major
 * type 1 could hold it. It is still valid CBOR.)
 * Throws a TypeError for anything else (undefined in an array or Map, Date, Set, typed
 * arrays other than Uint8Array, class instances, functions, symbols, strings holding lone
 * surrogates, duplicate Map keys, nesting deeper than CBOR_DEPTH_MAX).
 */
export function encodeCbor (value: unknown): Uint8Array {
  return encodeNormalized(normalizeForCbor(value, { name: 'value', depthMax: CBOR_DEPTH_MAX }))
}

/** Encodes a value that normalizeForCbor returned. */
export function encodeNormalized (value: unknown): Uint8Array {
  // cbor-x hands out Buffers carved from one shared pool: copy into an array of our own.
  return new Uint8Array(encoder.encode(value))
}

/**
 * encodeNormalized without the copy: a view of cbor-x's pool (a Buffer in Node), for a
 * caller that copies it somewhere at once and keeps nothing of it.
 */
export function encodeNormalizedView (value: unknown): Uint8Array {
  return encoder.encode(value)
}

/**
 * A safe integer in the form encodeNormalized writes as a CBOR integer of the shortest
 * width: cbor-x turns numbers beyond 32 bits into float64 but writes bigints exactly.
 */
export function cborInteger (value: number): number | bigint {
  return value >= TWO_POW_32 || value < -TWO_POW_32 ? BigInt(value) : value
}

export interface NormalizeOptions {
  /** How the value is named in error messages ("body"). */
  name: string
  /** Containers and tags nested deeper than this are refused. */
  depthMax: number
}

/**
 * Checks a value against what encodeCbor can write and returns it, or a copy where
 * something had to change (integer widths, undefined properties dropped). Values that need
 * no change are returned as they are, so checking costs no allocation in the common case.
 */
export function normalizeForCbor (value: unknown, options: NormalizeOptions): unknown {
  const path: Array<string | number> = []
  return normalize(value, 0, options, path)
}

function normalize (value: unknown, depth: number, options: NormalizeOptions, path: Array<string | number>): unknown {
  switch (typeof value) {
    case 'string':
      if (LONE_SURROGATE.test(value)) fail(options, path, 'is a string with a lone surrogate, which UTF-8 cannot carry')
      return value
    case 'boolean':
      return value
    case 'number':
      // cbor-x writes integers of up to 32 bits exactly and anything larger as float64.
      if (Number.isSafeInteger(value) && (value >= TWO_POW_32 || value < -TWO_POW_32)) return BigInt(value)
      return value
    case 'bigint':
      // cbor-x writes every bigint with an 8-byte head: narrow small ones to numbers so
      // that the shortest form is used. Bigints beyond 64 bits become bignum tags.
      if (value < BIG_TWO_POW_32 && value >= -BIG_TWO_POW_32) return Number(value)
      if ((value >= BIG_TWO_POW_64 || value < -BIG_TWO_POW_64) && depth + 1 > options.depthMax) {
        fail(options, path, `nests deeper than ${options.depthMax}`)
      }
      return value
    case 'object':
      if (value === null) return null
      return normalizeObject(value, depth, options, path)
    case 'undefined':
      return fail(options, path, 'is undefined, which plain CBOR here does not carry (leave the key out)')
    default:
      return fail(options, path, `is a ${typeof value}, which CBOR cannot carry`)
  }
}

function normalizeObject (value: object, depth: number, options: NormalizeOptions, path: Array<string | number>): unknown {
  if (value instanceof Uint8Array) {
    return value.constructor === Uint8Array ? value : plainView(value)
  }
  if (depth + 1 > options.depthMax) fail(options, path, `nests deeper than ${options.depthMax}`)
  if (Array.isArray(value)) return normalizeArray(value, depth + 1, options, path)
  if (value instanceof Map) return normalizeMap(value, depth + 1, options, path)
  const proto = Object.getPrototypeOf(value)
  if (proto === Object.prototype || proto === null) {
    return normalizePlainObject(value as Record<string, unknown>, proto === null, depth + 1, options, path)
  }
  return fail(options, path, `is a ${describe(value)}, which plain CBOR here does not carry (use a Uint8Array, array, Map or plain object)`)
}

function normalizeArray (value: unknown[], depth: number, options: NormalizeOptions, path: Array<string | number>): unknown {
  let out: unknown[] | null = null
  for (let i = 0; i < value.length; i++) {
    path.push(i)
    const item = normalize(value[i], depth, options, path)
    path.pop()
    if (item !== value[i] && out === null) out = value.slice(0, i)
    if (out !== null) out.push(item)
  }
  return out ?? value
}

function normalizeMap (value: Map<unknown, unknown>, depth: number, options: NormalizeOptions, path: Array<string | number>): unknown {
  let changed = false
  const entries: Array<[unknown, unknown]> = []
  const seen = new Set<string>()
  for (const [key, item] of value) {
    path.push(String(key))
    const normalKey = normalize(key, depth, options, path)
    const identity = keyIdentity(normalKey)
    if (identity !== null) {
      if (seen.has(identity)) fail(options, path, 'is a duplicate Map key once encoded')
      seen.add(identity)
    }
    const normalItem = normalize(item, depth, options, path)
    path.pop()
    if (normalKey !== key || normalItem !== item) changed = true
    entries.push([normalKey, normalItem])
  }
  return changed ? new Map(entries) : value
}

function keyIdentity (key: unknown): string | null {
  if (typeof key === 'number' || typeof key === 'bigint') return `n:${key}`
  if (typeof key === 'string') return `s:${key}`
  if (typeof key === 'boolean' || key === null) return `o:${key}`
  return null
}

function normalizePlainObject (value: Record<string, unknown>, nullProto: boolean, depth: number, options: NormalizeOptions, path: Array<string | number>): unknown {
  // A null-prototype object always becomes a Map: cbor-x treats it as a class instance.
  let changed = nullProto
  const keys = Object.keys(value)
  const entries: Array<[string, unknown]> = []
  for (const key of keys) {
    const item = value[key]
    if (item === undefined) {
      changed = true
      continue
    }
    path.push(key)
    const normalItem = normalize(item, depth, options, path)
    path.pop()
    if (normalItem !== item) changed = true
    entries.push([key, normalItem])
  }
  return changed ? new Map(entries) : value
}

function fail (options: NormalizeOptions, path: Array<string | number>, problem: string): never {
  let where = options.name
  for (const part of path) where += typeof part === 'number' ? `[${part}]` : `.${part}`
  throw new TypeError(`${where} ${problem}`)
}

/**
 * Decodes one CBOR item from bytes that may come from anyone: it is walked strictly first
 * (see cbor-scan). Maps whose keys are all text strings become plain objects, other maps
 * Maps; byte strings become Uint8Array (copies); integers become numbers when safe and
 * bigints otherwise. Throws ProtocolError('decode') for anything refused.
 */
export function decodeCbor (bytes: Uint8Array, depthMax = CBOR_DEPTH_MAX): unknown {
  if (!(bytes instanceof Uint8Array)) throw new TypeError(`bytes expected Uint8Array, got ${describe(bytes)}`)
  const stats = newScanStats()
  try {
    walkWhole(bytes, 0, bytes.length, { strict: true, depthMax, stats })
  } catch (err) {
    if (err instanceof CborScanError) throw new ProtocolError('decode', err.message, { cause: err })
    throw err
  }
  return decodeScanned(bytes, stats)
}

/**
 * Small items are decoded from a copy in this buffer: cbor-x caches a DataView on the
 * array it reads (as a property of that array), so one long-lived array spares a DataView
 * per decode. Larger ones are read through a view of their own, never the caller's array.
 * cbor-x copies byte strings out (copyBuffers) and keeps no reference to its input once it
 * returns.
 */
const DECODE_SCRATCH_BYTES = 4096
const decodeScratch = new Uint8Array(DECODE_SCRATCH_BYTES)
/** cbor-x's decode takes where the input ends as a second argument, which its typings leave out. */
type DecodeUpTo = { decode: (source: Uint8Array, end?: number) => unknown }

/** Decodes one item that a strict walk accepted, given what that walk saw. */
export function decodeScanned (bytes: Uint8Array, stats: ScanStats): unknown {
  let source = plainView(bytes)
  if (stats.indefiniteStrings) source = withDefiniteStrings(source)
  // The fast path lets cbor-x build objects itself; anything unusual goes through Maps and
  // is settled below (cbor-x would stringify non-text keys and rename "__proto__").
  const fast = stats.plainKeys && !stats.indefiniteStrings
  const decoder: DecodeUpTo = fast ? objectDecoder : mapDecoder
  let value: unknown
  if (source.length <= DECODE_SCRATCH_BYTES) {
    decodeScratch.set(source)
    value = decoder.decode(decodeScratch, source.length)
  } else {
    // A view of our own: cbor-x adds a DataView property to what it reads.
    value = decoder.decode(new Uint8Array(source.buffer, source.byteOffset, source.byteLength))
  }
  return fast && !stats.bigInts ? value : settle(value, !fast, stats.bigInts)
}

function settle (value: unknown, mapsToObjects: boolean, narrow: boolean): unknown {
  if (typeof value === 'bigint') {
    return narrow && value <= BigInt(Number.MAX_SAFE_INTEGER) && value >= BigInt(Number.MIN_SAFE_INTEGER) ? Number(value) : value
  }
  if (typeof value !== 'object' || value === null || value instanceof Uint8Array) return value
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) value[i] = settle(value[i], mapsToObjects, narrow)
    return value
  }
  if (value instanceof Map) {
    const entries: Array<[unknown, unknown]> = []
    let textKeys = true
    for (const [key, item] of value) {
      const settledKey = settle(key, mapsToObjects, narrow)
      if (typeof settledKey !== 'string') textKeys = false
      entries.push([settledKey, settle(item, mapsToObjects, narrow)])
    }
    if (!(mapsToObjects && textKeys)) return new Map(entries)
    const object: Record<string, unknown> = {}
    for (const [key, item] of entries) {
      // defineProperty so that a "__proto__" key is data, not a prototype change.
      Object.defineProperty(object, key as string, { value: item, enumerable: true, writable: true, configurable: true })
    }
    return object
  }
  const object = value as Record<string, unknown>
  for (const key of Object.keys(object)) object[key] = settle(object[key], mapsToObjects, narrow)
  return object
}

/** A copy of one walked item with every indefinite-length string made definite. */
function withDefiniteStrings (bytes: Uint8Array): Uint8Array {
  const parts: Uint8Array[] = []
  copyDefinite(bytes, 0, bytes.length, parts)
  return concatBytes(...parts)
}

function copyDefinite (bytes: Uint8Array, pos: number, end: number, parts: Uint8Array[]): number {
  const head = readHead(bytes, pos, end)
  switch (head.major) {
    case 2:
    case 3: {
      if (head.info !== 31) {
        const stringEnd = head.next + (head.value as number)
        parts.push(bytes.subarray(pos, stringEnd))
        return stringEnd
      }
      const content = stringContent(bytes, head, end)
      parts.push(encodeHead(head.major, content.length), content)
      let p = head.next
      while (bytes[p] !== 0xff) {
        const chunk = readHead(bytes, p, end)
        p = chunk.next + (chunk.value as number)
      }
      return p + 1
    }
    case 4:
    case 5: {
      parts.push(bytes.subarray(pos, head.next))
      let p = head.next
      if (head.info === 31) {
        while (bytes[p] !== 0xff) p = copyDefinite(bytes, p, end, parts)
        parts.push(bytes.subarray(p, p + 1))
        return p + 1
      }
      const count = (head.value as number) * (head.major === 5 ? 2 : 1)
      for (let i = 0; i < count; i++) p = copyDefinite(bytes, p, end, parts)
      return p
    }
    case 6:
      parts.push(bytes.subarray(pos, head.next))
      return copyDefinite(bytes, head.next, end, parts)
    default:
      parts.push(bytes.subarray(pos, head.next))
      return head.next
  }
}

/** How many bytes the shortest head for an argument below 2^32 takes. */
export function headLength (value: number): number {
  if (value < 24) return 1
  if (value < 0x100) return 2
  if (value < 0x1_0000) return 3
  if (value < TWO_POW_32) return 5
  throw new TypeError(`a CBOR length expected below 2^32, got ${value}`)
}

/** Writes the shortest head for a major type and an argument below 2^32 at out[pos]; returns the offset past it. */
export function writeHead (out: Uint8Array, pos: number, major: number, value: number): number {
  const initial = major << 5
  if (value < 24) {
    out[pos] = initial | value
    return pos + 1
  }
  if (value < 0x100) {
    out[pos] = initial | 24
    out[pos + 1] = value
    return pos + 2
  }
  if (value < 0x1_0000) {
    out[pos] = initial | 25
    out[pos + 1] = value >> 8
    out[pos + 2] = value & 0xff
    return pos + 3
  }
  if (value < TWO_POW_32) {
    out[pos] = initial | 26
    out[pos + 1] = value >>> 24
    out[pos + 2] = (value >> 16) & 0xff
    out[pos + 3] = (value >> 8) & 0xff
    out[pos + 4] = value & 0xff
    return pos + 5
  }
  throw new TypeError(`a CBOR length expected below 2^32, got ${value}`)
}

/** The shortest head for a major type and an argument below 2^32. */
export function encodeHead (major: number, value: number): Uint8Array {
  const initial = major << 5
  if (value < 24) return Uint8Array.of(initial | value)
  if (value < 0x100) return Uint8Array.of(initial | 24, value)
  if (value < 0x1_0000) return Uint8Array.of(initial | 25, value >> 8, value & 0xff)
  if (value < TWO_POW_32) return Uint8Array.of(initial | 26, value >>> 24, (value >> 16) & 0xff, (value >> 8) & 0xff, value & 0xff)
  throw new TypeError(`a CBOR length expected below 2^32, got ${value}`)
}

