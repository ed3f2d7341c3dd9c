/**
 * A strict RFC 8949 walker for untrusted bytes. It never builds values: it checks that an
 * item is well formed, that it stays within a nesting bound, and (in strict mode) that it
 * uses only what plain CBOR allows in this protocol, and it returns where the item ends.
 * Callers slice the input with those offsets, so a batch item's bytes or a COSE payload
 * are exactly the bytes that were received.
 *
 * Two modes:
 * - lenient: well-formedness only (RFC 8949 §5.3.1 and Appendix F), any tag. Used to split
 *   a payload into items, so one item that is well formed but refused does not take its
 *   neighbours down with it.
 * - strict: also refuses, anywhere in the item, tags other than 2 and 3 (bignums, whose
 *   content must be a byte string), so cbor-x extensions (57343 records, 64 typed arrays,
 *   51 packed, 259 maps, ...) and even standard tags such as 1 (epoch time) never reach a
 *   decoder; simple values other than false, true and null (so no undefined); text strings
 *   that are not valid UTF-8; and maps with duplicate keys.
 *
 * Tag 18 (COSE_Sign1) is never accepted here: the payload parser recognises it itself, and
 * only at envelope position.
 */

/** Why a walk stopped. `offset` is where in the input the problem was found. */
export class CborScanError extends Error {
  readonly offset: number

  constructor (message: string, offset: number) {
    super(`${message} (at offset ${offset})`)
    this.name = 'CborScanError'
    this.offset = offset
  }
}

/** The initial byte and argument of a data item (RFC 8949 §3). */
export interface Head {
  /** Major type, 0 to 7. */
  major: number
  /** Additional information, 0 to 31 (31: indefinite length, or break for major 7). */
  info: number
  /**
   * The argument: an integer's value, a string's byte length, an array's item count, a
   * map's pair count, a tag's number, a simple value. A bigint only above
   * Number.MAX_SAFE_INTEGER; 0 for indefinite lengths; the raw bits are not decoded for
   * floats (major 7, info 25-27).
   */
  value: number | bigint
  /** Offset of the initial byte. */
  start: number
  /** Offset just past the head. */
  next: number
}

/** What a strict walk saw, so that the decoder can skip work it does not need. */
export interface ScanStats {
  /** Every map key was a text string other than "__proto__" (cbor-x can build plain objects). */
  plainKeys: boolean
  /** Some byte or text string used indefinite length (cbor-x cannot read those). */
  indefiniteStrings: boolean
  /** Some integer used the 8-byte form or a bignum tag (cbor-x gives a bigint for those). */
  bigInts: boolean
  /**
   * The item is, byte for byte, what encodeCbor writes for the value decodeScanned reads
   * from it, so its bytes can stand for that value (a bridge record splices them instead
   * of re-encoding). Judged conservatively: shortest heads, definite lengths, no tags, no
   * half or single floats, no float64 holding NaN or a safe integer, no map key that a
   * plain object would reorder ("__proto__", digit-only text) or that is an array, map or
   * tag. Anything else makes it false, and the value is then re-encoded as before.
   */
  asEncoded: boolean
}

export function newScanStats (): ScanStats {
  return { plainKeys: true, indefiniteStrings: false, bigInts: false, asEncoded: true }
}

/** Sets stats back to what newScanStats returns. */
export function resetScanStats (stats: ScanStats): void {
  stats.plainKeys = true
  stats.indefiniteStrings = false
  stats.bigInts = false
  stats.asEncoded = true
}

export interface WalkOptions {
  strict: boolean
  /** Containers and tags nested deeper than this are refused. */
  depthMax: number
  /** Filled in while walking (strict walks only). */
  stats?: ScanStats
}

const BREAK = 0xff
const TWO_POW_32 = 0x1_0000_0000
/** The high word of an 8-byte argument below this keeps the value a safe integer. */
const SAFE_HIGH_WORD = 0x20_0000
const PROTO_KEY = [95, 95, 112, 114, 111, 116, 111, 95, 95] // "__proto__"
/** Up to this many keys a map's duplicates are found by comparing bytes, cheaper than a Set of identities. */
const SMALL_MAP_KEYS = 16
/** -(2^64) as major type 1: cbor-x writes that value as a bignum, so it is not asEncoded. */
const NINT_MIN_ARGUMENT = 0xffff_ffff_ffff_ffffn

const fatalUtf8 = new TextDecoder('utf-8', { fatal: true })

// The head most recently read by scanHead. The walker is synchronous and never re-entered,
// so these registers serve every walk and no object is built per data item.
let hMajor = 0
let hInfo = 0
let hValue: number | bigint = 0
let hNext = 0

/** Reads the head at pos; throws CborScanError for truncation or reserved additional information. */
export function readHead (bytes: Uint8Array, pos: number, end: number): Head {
  scanHead(bytes, pos, end)
  let value = hValue
  if (hMajor === 7 && hInfo === 27) {
    // scanHead leaves a float64's argument at 0; readHead has always given its raw bits.
    const high = uint32(bytes, pos + 1)
    const low = uint32(bytes, pos + 5)
    value = high < SAFE_HIGH_WORD ? high * TWO_POW_32 + low : (BigInt(high) << 32n) | BigInt(low)
  }
  return { major: hMajor, info: hInfo, value, start: pos, next: hNext }
}

/**
 * readHead without the object, for the hot paths of this module and its callers: the head
 * is left in a shared register, read with headMajor() & co. until the next scan. Unlike
 * readHead, the argument of a float64 (major 7, info 27) is left at 0.
 */
export function scanHead (bytes: Uint8Array, pos: number, end: number): void {
  if (pos >= end) throw new CborScanError('unexpected end of input', pos)
  const initial = bytes[pos]
  const major = initial >> 5
  const info = initial & 0x1f
  let next = pos + 1
  let value: number | bigint
  if (info < 24) {
    value = info
  } else if (info === 24) {
    need(bytes, next, 1, end)
    value = bytes[next]
    next += 1
  } else if (info === 25) {
    need(bytes, next, 2, end)
    value = bytes[next] * 0x100 + bytes[next + 1]
    next += 2
  } else if (info === 26) {
    need(bytes, next, 4, end)
    value = uint32(bytes, next)
    next += 4
  } else if (info === 27) {
    need(bytes, next, 8, end)
    if (major === 7) {
      // A float64: its bits are no argument, and reading them as one would make a bigint.
      value = 0
    } else {
      const high = uint32(bytes, next)
      const low = uint32(bytes, next + 4)
      value = high < SAFE_HIGH_WORD ? high * TWO_POW_32 + low : (BigInt(high) << 32n) | BigInt(low)
    }
    next += 8
  } else if (info === 31) {
    // Indefinite length exists for strings, arrays and maps; for major 7 it is the break.
    if (major === 0 || major === 1 || major === 6) {
      throw new CborScanError(`additional information 31 is not allowed for major type ${major}`, pos)
    }
    value = 0
  } else {
    throw new CborScanError(`reserved additional information ${info}`, pos)
  }
  hMajor = major
  hInfo = info
  hValue = value
  hNext = next
}

/** The major type of the head scanHead read last. */
export function headMajor (): number { return hMajor }
/** Its additional information. */
export function headInfo (): number { return hInfo }
/** Its argument (see Head.value). */
export function headValue (): number | bigint { return hValue }
/** The offset just past it. */
export function headNext (): number { return hNext }

function need (bytes: Uint8Array, pos: number, count: number, end: number): void {
  if (end - pos < count) throw new CborScanError('unexpected end of input inside a head', pos)
}

function uint32 (bytes: Uint8Array, pos: number): number {
  return bytes[pos] * 0x100_0000 + bytes[pos + 1] * 0x1_0000 + bytes[pos + 2] * 0x100 + bytes[pos + 3]
}

/** A head whose argument would fit a shorter form (RFC 8949 §4.2.1's preferred serialisation is the shortest). */
function longerThanNeeded (info: number, value: number | bigint): boolean {
  if (info < 24 || info > 27) return false
  if (info === 24) return (value as number) < 24
  if (info === 25) return (value as number) < 0x100
  if (info === 26) return (value as number) < 0x1_0000
  return typeof value === 'number' && value < TWO_POW_32
}

/**
 * Walks the one item starting at pos and returns the offset just past it. Throws
 * CborScanError when the item is not well formed, runs past end, nests deeper than
 * options.depthMax, or (strict) uses something this protocol refuses.
 */
export function walkItem (bytes: Uint8Array, pos: number, end: number, options: WalkOptions): number {
  keyTop = 0
  return walk(bytes, pos, end, 0, options)
}

/** walkItem over bytes[start, end), requiring that the one item fills it exactly. */
export function walkWhole (bytes: Uint8Array, start: number, end: number, options: WalkOptions): void {
  keyTop = 0
  const itemEnd = walk(bytes, start, end, 0, options)
  if (itemEnd !== end) throw new CborScanError(`${end - itemEnd} bytes after the item`, itemEnd)
}

/**
 * walkWhole(bytes, 0, end, options) that also splits an array: when the item is an array,
 * spans is filled with the [start, end) offsets of its items, two numbers each (it is
 * emptied first). One walk instead of a walk and a split.
 */
export function walkWholeSplit (bytes: Uint8Array, end: number, options: WalkOptions, spans: number[]): void {
  keyTop = 0
  spans.length = 0
  scanHead(bytes, 0, end)
  let itemEnd: number
  if (hMajor === 4) {
    // What walk does for an array, with the items recorded.
    if (1 > options.depthMax) throw new CborScanError(`nesting deeper than ${options.depthMax}`, 0)
    itemEnd = walkArray(bytes, 0, hInfo, hValue, hNext, end, 1, options, spans)
  } else {
    itemEnd = walk(bytes, 0, end, 0, options)
  }
  if (itemEnd !== end) throw new CborScanError(`${end - itemEnd} bytes after the item`, itemEnd)
}

function walk (bytes: Uint8Array, pos: number, end: number, depth: number, options: WalkOptions): number {
  let major: number
  let info: number
  let value: number | bigint
  let next: number
  const initial = pos < end ? bytes[pos] : BREAK
  if ((initial & 0x1f) < 24) {
    // The common short head, read here; anything else (and every error) is scanHead's.
    major = initial >> 5
    info = initial & 0x1f
    value = info
    next = pos + 1
  } else {
    scanHead(bytes, pos, end)
    major = hMajor
    info = hInfo
    value = hValue
    next = hNext
  }
  const stats = options.stats
  switch (major) {
    case 0:
    case 1:
      if (stats !== undefined) {
        if (info === 27) stats.bigInts = true
        if (longerThanNeeded(info, value) || (major === 1 && value === NINT_MIN_ARGUMENT)) stats.asEncoded = false
      }
      return next
    case 2:
    case 3:
      if (stats !== undefined && longerThanNeeded(info, value)) stats.asEncoded = false
      if (info !== 31) return definiteStringEnd(bytes, major, value, pos, next, end, options)
      return walkString(bytes, major, info, value, pos, next, end, options)
    case 4:
    case 5:
      if (depth + 1 > options.depthMax) throw new CborScanError(`nesting deeper than ${options.depthMax}`, pos)
      if (stats !== undefined && (info === 31 || longerThanNeeded(info, value))) stats.asEncoded = false
      return major === 4
        ? walkArray(bytes, pos, info, value, next, end, depth + 1, options, null)
        : walkMap(bytes, pos, info, value, next, end, depth + 1, options)
    case 6:
      if (stats !== undefined) stats.asEncoded = false
      return walkTag(bytes, pos, value, next, end, depth, options)
    default:
      return walkSimple(bytes, pos, info, value, next, options)
  }
}

function walkString (bytes: Uint8Array, major: number, info: number, value: number | bigint, pos: number, next: number, end: number, options: WalkOptions): number {
  if (info !== 31) return definiteStringEnd(bytes, major, value, pos, next, end, options)
  if (options.stats) {
    options.stats.indefiniteStrings = true
    options.stats.asEncoded = false
  }
  // RFC 8949 §3.2.3: the chunks are definite-length strings of the same major type.
  let p = next
  for (;;) {
    if (p >= end) throw new CborScanError('unexpected end of input in an indefinite-length string', p)
    if (bytes[p] === BREAK) return p + 1
    scanHead(bytes, p, end)
    if (hMajor !== major || hInfo === 31) {
      throw new CborScanError('an indefinite-length string chunk must be a definite string of the same type', p)
    }
    p = definiteStringEnd(bytes, hMajor, hValue, p, hNext, end, options)
  }
}

function definiteStringEnd (bytes: Uint8Array, major: number, length: number | bigint, start: number, next: number, end: number, options: WalkOptions): number {
  if (typeof length !== 'number' || length > end - next) {
    throw new CborScanError('string runs past the end of the input', start)
  }
  const stringEnd = next + length
  if (options.strict && major === 3 && !isUtf8(bytes, next, stringEnd)) {
    throw new CborScanError('text string is not valid UTF-8', start)
  }
  return stringEnd
}

function isUtf8 (bytes: Uint8Array, start: number, end: number): boolean {
  let i = start
  while (i < end && bytes[i] < 0x80) i++
  if (i === end) return true
  try {
    fatalUtf8.decode(bytes.subarray(start, end))
    return true
  } catch {
    return false
  }
}

function walkArray (bytes: Uint8Array, start: number, info: number, count: number | bigint, next: number, end: number, depth: number, options: WalkOptions, spans: number[] | null): number {
  let pos = next
  if (info === 31) {
    for (;;) {
      if (pos >= end) throw new CborScanError('unexpected end of input in an indefinite-length array', pos)
      if (bytes[pos] === BREAK) return pos + 1
      const itemEnd = walk(bytes, pos, end, depth, options)
      if (spans !== null) spans.push(pos, itemEnd)
      pos = itemEnd
    }
  }
  // Every item takes at least one byte: a count beyond what is left is a lie, refused
  // before any loop runs on it.
  if (typeof count !== 'number' || count > end - pos) throw new CborScanError('array runs past the end of the input', start)
  for (let i = 0; i < count; i++) {
    const itemEnd = walk(bytes, pos, end, depth, options)
    if (spans !== null) spans.push(pos, itemEnd)
    pos = itemEnd
  }
  return pos
}

// The keys of the maps being walked (strict mode), to refuse duplicates without building a
// string per key: a stack of records, one per key, each map using the records above its
// parent's. Per key: its class (KEY_*), and for integers the value, for definite strings
// the content's span, otherwise the item's own span. keyTop is reset by every entry point.
const KEY_UINT = 0
const KEY_NINT = 1
const KEY_BYTES = 2
const KEY_TEXT = 3
/** Compared by the item's bytes: anything else, and integers beyond 2^53 (which have one encoding). */
const KEY_RAW = 4
const KEY_RECORDS_MAX = (32 + 1) * SMALL_MAP_KEYS
const keyClass = new Uint8Array(KEY_RECORDS_MAX)
/** Integer value, or start of the span. */
const keyA = new Float64Array(KEY_RECORDS_MAX)
/** End of the span; -1 for an indefinite-length string (compared by its joined content). */
const keyB = new Int32Array(KEY_RECORDS_MAX)
/** A hash that equal integer keys and equal definite strings share; -1 for others (compared in full). */
const keyHash = new Int32Array(KEY_RECORDS_MAX)
/** Where the key item starts and ends, for the identity strings of larger maps. */
const keyStart = new Int32Array(KEY_RECORDS_MAX)
const keyStop = new Int32Array(KEY_RECORDS_MAX)
let keyTop = 0

function walkMap (bytes: Uint8Array, start: number, info: number, count: number | bigint, next: number, end: number, depth: number, options: WalkOptions): number {
  let pos = next
  const indefinite = info === 31
  if (!indefinite && (typeof count !== 'number' || count * 2 > end - pos)) {
    throw new CborScanError('map runs past the end of the input', start)
  }
  const { strict, stats } = options
  // Up to SMALL_MAP_KEYS keys are compared pairwise from the records; past that, a Set of
  // identity strings takes over (a big map would otherwise cost a quadratic number of compares).
  const base = keyTop
  // Records are kept for SMALL_MAP_KEYS keys unless that would overflow them (only a caller's
  // depthMax far beyond CBOR_DEPTH_MAX gets there): such maps use the Set from the start.
  const pairwise = base + SMALL_MAP_KEYS <= KEY_RECORDS_MAX
  let set: Set<string> | null = null
  for (let i = 0; indefinite || i < (count as number); i++) {
    if (indefinite) {
      if (pos >= end) throw new CborScanError('unexpected end of input in an indefinite-length map', pos)
      if (bytes[pos] === BREAK) {
        keyTop = base
        return pos + 1
      }
    }
    const keyAt = pos
    scanHead(bytes, keyAt, end)
    const kMajor = hMajor
    const kInfo = hInfo
    const kValue = hValue
    const kNext = hNext
    pos = walk(bytes, keyAt, end, depth, options)
    if (strict) {
      if (set === null && pairwise && i < SMALL_MAP_KEYS) {
        const record = base + i
        keyTop = record + 1
        keyStart[record] = keyAt
        keyStop[record] = pos
        let hash = -1
        if ((kMajor === 0 || kMajor === 1) && typeof kValue === 'number') {
          keyClass[record] = kMajor
          keyA[record] = kValue
          hash = (kValue % 0x4000_0000) * 2 + kMajor
        } else if (kMajor === 2 || kMajor === 3) {
          keyClass[record] = kMajor
          keyA[record] = kInfo === 31 ? keyAt : kNext
          keyB[record] = kInfo === 31 ? -1 : pos
          if (kInfo !== 31) hash = (((pos - kNext) * 0x3fb + (pos > kNext ? bytes[kNext] * 0x101 + bytes[pos - 1] : 0)) & 0x3fff_ffff) * 2 + (kMajor & 1)
        } else {
          keyClass[record] = KEY_RAW
          keyA[record] = keyAt
          keyB[record] = pos
        }
        keyHash[record] = hash
        for (let other = base; other < record; other++) {
          const otherHash = keyHash[other]
          if ((hash === -1 || otherHash === -1 || hash === otherHash) && sameKey(bytes, other, record, end)) {
            throw new CborScanError('duplicate map key', keyAt)
          }
        }
      } else {
        if (set === null) {
          set = new Set()
          for (let other = base; other < base + (pairwise ? i : 0); other++) {
            set.add(keyIdentity(bytes, readHead(bytes, keyStart[other], end), keyStop[other], end))
          }
        }
        const identity = keyIdentity(bytes, { major: kMajor, info: kInfo, value: kValue, start: keyAt, next: kNext }, pos, end)
        if (set.has(identity)) throw new CborScanError('duplicate map key', keyAt)
        set.add(identity)
      }
      if (stats) {
        if (stats.plainKeys && !isPlainKey(bytes, kMajor, kInfo, kNext, pos)) stats.plainKeys = false
        if (stats.asEncoded && reorderedOrOpaqueKey(bytes, kMajor, kInfo, kNext, pos)) stats.asEncoded = false
      }
    }
    pos = walk(bytes, pos, end, depth, options)
  }
  keyTop = base
  return pos
}

/** Whether the keys recorded at a and b are the same key (see keyIdentity). */
function sameKey (bytes: Uint8Array, a: number, b: number, end: number): boolean {
  const cls = keyClass[a]
  if (cls !== keyClass[b]) return false
  if (cls === KEY_UINT || cls === KEY_NINT) return keyA[a] === keyA[b]
  if ((cls === KEY_BYTES || cls === KEY_TEXT) && (keyB[a] === -1 || keyB[b] === -1)) {
    // A chunked string: compare the joined contents (rare, so the allocation is fine).
    const contentA = contentOf(bytes, a, end)
    const contentB = contentOf(bytes, b, end)
    return sameBytes(contentA, 0, contentA.length, contentB, 0, contentB.length)
  }
  return sameBytes(bytes, keyA[a], keyB[a], bytes, keyA[b], keyB[b])
}

function contentOf (bytes: Uint8Array, record: number, end: number): Uint8Array {
  return stringContent(bytes, readHead(bytes, keyStart[record], end), end)
}

function sameBytes (a: Uint8Array, aStart: number, aEnd: number, b: Uint8Array, bStart: number, bEnd: number): boolean {
  if (aEnd - aStart !== bEnd - bStart) return false
  for (let i = 0; i < aEnd - aStart; i++) if (a[aStart + i] !== b[bStart + i]) return false
  return true
}

/**
 * A string that is equal for equal keys: integers by value (whatever their width), strings
 * by content (whatever their chunking), anything else by its bytes.
 */
function keyIdentity (bytes: Uint8Array, head: Head, stop: number, end: number): string {
  if (head.major === 0) return typeof head.value === 'number' ? `${head.value}` : `${head.value}n`
  if (head.major === 1) return typeof head.value === 'number' ? `-${head.value}` : `-${head.value}n`
  if (head.major === 3) return `t${latin1(stringContent(bytes, head, end))}`
  if (head.major === 2) return `b${latin1(stringContent(bytes, head, end))}`
  return `r${latin1(bytes.subarray(head.start, stop))}`
}

function isPlainKey (bytes: Uint8Array, major: number, info: number, next: number, stop: number): boolean {
  if (major !== 3) return false
  // A chunked key is judged plain here: the decoder never builds objects directly from
  // input with chunked strings (see indefiniteStrings).
  if (info === 31) return true
  return !isProtoKey(bytes, next, stop)
}

function isProtoKey (bytes: Uint8Array, start: number, stop: number): boolean {
  if (stop - start !== PROTO_KEY.length) return false
  for (let i = 0; i < PROTO_KEY.length; i++) if (bytes[start + i] !== PROTO_KEY[i]) return false
  return true
}

/**
 * A map key that keeps a body from being asEncoded: "__proto__", a digit-only text key (a
 * plain object lists array-index keys first, not in wire order), or an array, map or tag.
 */
function reorderedOrOpaqueKey (bytes: Uint8Array, major: number, info: number, next: number, stop: number): boolean {
  if (major === 4 || major === 5 || major === 6) return true
  if (major !== 3 || info === 31) return false
  if (isProtoKey(bytes, next, stop)) return true
  if (stop === next || stop - next > 10) return false
  for (let i = next; i < stop; i++) if (bytes[i] < 0x30 || bytes[i] > 0x39) return false
  return true
}

function latin1 (bytes: Uint8Array): string {
  let out = ''
  for (let i = 0; i < bytes.length; i += 4096) {
    out += String.fromCharCode.apply(null, bytes.subarray(i, i + 4096) as unknown as number[])
  }
  return out
}

function walkTag (bytes: Uint8Array, start: number, tag: number | bigint, next: number, end: number, depth: number, options: WalkOptions): number {
  if (depth + 1 > options.depthMax) throw new CborScanError(`nesting deeper than ${options.depthMax}`, start)
  if (options.strict) {
    if (tag !== 2 && tag !== 3) {
      throw new CborScanError(`tag ${tag} is not allowed here (only 2 and 3, bignums)`, start)
    }
    scanHead(bytes, next, end)
    if (hMajor !== 2) throw new CborScanError('a bignum tag must hold a byte string', next)
    if (options.stats) options.stats.bigInts = true
  }
  return walk(bytes, next, end, depth + 1, options)
}

// A float64's bits, read big-endian from the input whatever the platform's byte order.
const float64 = new Float64Array(1)
const float64Bytes = new Uint8Array(float64.buffer)
const littleEndian = new Uint8Array(Uint16Array.of(1).buffer)[0] === 1

function readFloat64 (bytes: Uint8Array, pos: number): number {
  for (let i = 0; i < 8; i++) float64Bytes[littleEndian ? 7 - i : i] = bytes[pos + i]
  return float64[0]
}

function walkSimple (bytes: Uint8Array, start: number, info: number, value: number | bigint, next: number, options: WalkOptions): number {
  if (info === 31) throw new CborScanError('break outside an indefinite-length item', start)
  if (info === 24) {
    // RFC 8949 §3.3: simple values below 32 must use the one-byte form.
    if ((value as number) < 32) throw new CborScanError('two-byte simple value below 32 is not well formed', start)
    if (options.strict) throw new CborScanError(`simple value ${value} is not allowed`, start)
    return next
  }
  if (info >= 25) {
    // Half, single and double floats. encodeCbor writes every float as a float64, and a
    // float64 holding a safe integer (or NaN, whose bits may change) as something else.
    const stats = options.stats
    if (stats !== undefined && stats.asEncoded) {
      if (info !== 27) stats.asEncoded = false
      else {
        const float = readFloat64(bytes, start + 1)
        if (Number.isNaN(float) || Number.isSafeInteger(float)) stats.asEncoded = false
      }
    }
    return next
  }
  if (options.strict && (info < 20 || info === 23)) {
    throw new CborScanError(info === 23 ? 'undefined is not allowed' : `simple value ${info} is not allowed`, start)
  }
  return next
}

/**
 * The content of the byte or text string whose head is given: a subarray of the input for
 * a definite-length string, a new array joining the chunks of an indefinite-length one.
 * The string must have been walked already.
 */
export function stringContent (bytes: Uint8Array, head: Head, end: number): Uint8Array {
  if (head.info !== 31) return bytes.subarray(head.next, head.next + (head.value as number))
  const chunks: Uint8Array[] = []
  let length = 0
  let pos = head.next
  while (bytes[pos] !== BREAK) {
    const chunk = readHead(bytes, pos, end)
    const chunkEnd = chunk.next + (chunk.value as number)
    chunks.push(bytes.subarray(chunk.next, chunkEnd))
    length += chunkEnd - chunk.next
    pos = chunkEnd
  }
  const out = new Uint8Array(length)
  let offset = 0
  for (const chunk of chunks) {
    out.set(chunk, offset)
    offset += chunk.length
  }
  return out
}

/**
 * stringContent for the (walked) byte or text string whose item starts at pos, without a
 * Head object: a view into the input, or the joined chunks of an indefinite-length string.
 */
export function stringContentAt (bytes: Uint8Array, pos: number, end: number): Uint8Array {
  scanHead(bytes, pos, end)
  if (hInfo !== 31) return bytes.subarray(hNext, hNext + (hValue as number))
  return stringContent(bytes, { major: hMajor, info: 31, value: 0, start: pos, next: hNext }, end)
}

/** One key and value of a map, by offsets into the input. */
export interface MapEntry {
  key: Head
  keyEnd: number
  valueStart: number
  valueEnd: number
}

/**
 * The entries of the map whose head is given, in wire order. The map must have been walked
 * leniently already (so it is well formed); values are not checked here.
 */
export function mapEntries (bytes: Uint8Array, head: Head, end: number): MapEntry[] {
  const entries: MapEntry[] = []
  const lenient: WalkOptions = { strict: false, depthMax: Number.MAX_SAFE_INTEGER }
  const indefinite = head.info === 31
  let pos = head.next
  for (let i = 0; indefinite || i < (head.value as number); i++) {
    if (indefinite && bytes[pos] === BREAK) break
    const key = readHead(bytes, pos, end)
    const keyEnd = walk(bytes, pos, end, 0, lenient)
    const valueEnd = walk(bytes, keyEnd, end, 0, lenient)
    entries.push({ key, keyEnd, valueStart: keyEnd, valueEnd })
    pos = valueEnd
  }
  return entries
}
