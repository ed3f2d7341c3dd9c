/**
 * Byte helpers that work the same in Node and browsers (no Buffer).
 */

const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'))
const HEX_CODES = Array.from('0123456789abcdef', (digit) => digit.charCodeAt(0))

/**
 * Arrays of char codes, one per length up to CHAR_CODES_MAX, reused to build short strings
 * with one String.fromCharCode call (no intermediate strings).
 */
const CHAR_CODES_MAX = 128
const charCodeArrays: number[][] = []

function charCodes (length: number): number[] {
  return charCodeArrays[length] ??= new Array<number>(length).fill(0)
}

/** Throws a TypeError unless value is a Uint8Array (of length when given). */
export function assertBytes (name: string, value: unknown, length?: number): asserts value is Uint8Array {
  if (!(value instanceof Uint8Array)) {
    throw new TypeError(`${name} expected Uint8Array, got ${describe(value)}`)
  }
  if (length !== undefined && value.length !== length) {
    throw new TypeError(`${name} expected Uint8Array of length ${length}, got length=${value.length}`)
  }
}

/** A short description of a value for error messages (never the value itself: it may be secret). */
export function describe (value: unknown): string {
  if (value === null) return 'null'
  if (Array.isArray(value)) return 'array'
  if (typeof value === 'object') return value.constructor?.name ?? 'object'
  return typeof value
}

/** Lowercase hex of bytes. */
export function toHex (bytes: Uint8Array): string {
  assertBytes('bytes', bytes)
  if (bytes.length * 2 <= CHAR_CODES_MAX) {
    const codes = charCodes(bytes.length * 2)
    for (let i = 0; i < bytes.length; i++) {
      codes[2 * i] = HEX_CODES[bytes[i] >> 4]
      codes[2 * i + 1] = HEX_CODES[bytes[i] & 15]
    }
    return String.fromCharCode.apply(null, codes)
  }
  let out = ''
  for (let i = 0; i < bytes.length; i++) out += HEX[bytes[i]]
  return out
}

/** Bytes of a hex string (either case); throws a TypeError on odd length or a non-hex digit. */
export function fromHex (hex: string): Uint8Array {
  if (typeof hex !== 'string') throw new TypeError(`hex expected string, got ${describe(hex)}`)
  if (hex.length % 2 !== 0) throw new TypeError(`hex expected an even number of digits, got length=${hex.length}`)
  const out = new Uint8Array(hex.length / 2)
  for (let i = 0; i < out.length; i++) {
    const hi = hexDigit(hex.charCodeAt(i * 2))
    const lo = hexDigit(hex.charCodeAt(i * 2 + 1))
    if (hi < 0 || lo < 0) throw new TypeError(`hex has a non-hex character near offset ${i * 2}`)
    out[i] = hi * 16 + lo
  }
  return out
}

function hexDigit (c: number): number {
  if (c >= 48 && c <= 57) return c - 48
  if (c >= 97 && c <= 102) return c - 87
  if (c >= 65 && c <= 70) return c - 55
  return -1
}

/** One new Uint8Array holding the parts in order. */
export function concatBytes (...parts: Uint8Array[]): Uint8Array {
  let length = 0
  for (let i = 0; i < parts.length; i++) {
    assertBytes(`parts[${i}]`, parts[i])
    length += parts[i].length
  }
  const out = new Uint8Array(length)
  let offset = 0
  for (const part of parts) {
    out.set(part, offset)
    offset += part.length
  }
  return out
}

/** Byte-wise equality. Not constant-time: use it for ids and kids, never for secrets. */
export function equalBytes (a: Uint8Array, b: Uint8Array): boolean {
  assertBytes('a', a)
  assertBytes('b', b)
  if (a.length !== b.length) return false
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false
  return true
}

/**
 * A plain Uint8Array over the same memory. Node's Buffer is a Uint8Array whose slice()
 * shares memory and whose subarrays are Buffers again; working on a plain view keeps every
 * slice we hand out the same type in Node and in browsers.
 */
export function plainView (bytes: Uint8Array): Uint8Array {
  return bytes.constructor === Uint8Array ? bytes : new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength)
}

/** A copy of bytes[start, end) as a plain Uint8Array that owns its memory. */
export function copyBytes (bytes: Uint8Array, start = 0, end = bytes.length): Uint8Array {
  return new Uint8Array(bytes.subarray(start, end))
}

const utf8Encoder = new TextEncoder()
const utf8Decoder = new TextDecoder('utf-8')

export function utf8Bytes (text: string): Uint8Array {
  return utf8Encoder.encode(text)
}

/** Decodes UTF-8 that was already validated (invalid sequences would become U+FFFD). */
export function utf8Text (bytes: Uint8Array): string {
  return utf8Decoder.decode(bytes)
}

// Short ASCII texts seen lately (principal ids, mostly), by a hash of their bytes: the same
// few ids arrive again and again, and a hit costs neither a decoder call nor a string.
const TEXT_CACHE_SLOTS = 256
const textCache: Array<string | undefined> = new Array<string | undefined>(TEXT_CACHE_SLOTS).fill(undefined)

/**
 * utf8Text(bytes.subarray(start, end)), quicker for short ASCII text: such a text is read
 * without a decoder, and one equal to a recently read text is that same string. A cached
 * string is only returned after comparing it with the bytes, so whatever fills the cache
 * can only make it miss.
 */
export function asciiOrUtf8Text (bytes: Uint8Array, start: number, end: number): string {
  const length = end - start
  if (length > CHAR_CODES_MAX) return utf8Decoder.decode(bytes.subarray(start, end))
  let hash = length
  for (let i = start; i < end; i++) {
    const byte = bytes[i]
    if (byte >= 0x80) return utf8Decoder.decode(bytes.subarray(start, end))
    hash = (Math.imul(hash, 31) + byte) | 0
  }
  const slot = (hash ^ (hash >>> 8) ^ (hash >>> 16)) & (TEXT_CACHE_SLOTS - 1)
  const cached = textCache[slot]
  if (cached !== undefined && cached.length === length) {
    let same = true
    for (let i = 0; i < length; i++) {
      if (cached.charCodeAt(i) !== bytes[start + i]) {
        same = false
        break
      }
    }
    if (same) return cached
  }
  const codes = charCodes(length)
  for (let i = 0; i < length; i++) codes[i] = bytes[start + i]
  const text = String.fromCharCode.apply(null, codes)
  textCache[slot] = text
  return text
}
