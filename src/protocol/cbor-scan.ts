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
}

export function newScanStats (): ScanStats {
  return { plainKeys: true, indefiniteStrings: false, bigInts: false }
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
/** Up to this many keys a map's duplicates are found by a linear search, cheaper than a Set. */
const SMALL_MAP_KEYS = 16

const fatalUtf8 = new TextDecoder('utf-8', { fatal: true })

/** Reads the head at pos; throws CborScanError for truncation or reserved additional information. */
export function readHead (bytes: Uint8Array, pos: number, end: number): Head {
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
    const high = uint32(bytes, next)
    const low = uint32(bytes, next + 4)
    value = high < SAFE_HIGH_WORD ? high * TWO_POW_32 + low : (BigInt(high) << 32n) | BigInt(low)
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
  return { major, info, value, start: pos, next }
}

function need (bytes: Uint8Array, pos: number, count: number, end: number): void {
  if (end - pos < count) throw new CborScanError('unexpected end of input inside a head', pos)
}

function uint32 (bytes: Uint8Array, pos: number): number {
  return bytes[pos] * 0x100_0000 + bytes[pos + 1] * 0x1_0000 + bytes[pos + 2] * 0x100 + bytes[pos + 3]
}

/**
 * Walks the one item starting at pos and returns the offset just past it. Throws
 * CborScanError when the item is not well formed, runs past end, nests deeper than
 * options.depthMax, or (strict) uses something this protocol refuses.
 */
export function walkItem (bytes: Uint8Array, pos: number, end: number, options: WalkOptions): number {
  return walk(bytes, pos, end, 0, options)
}

/** walkItem over bytes[start, end), requiring that the one item fills it exactly. */
export function walkWhole (bytes: Uint8Array, start: number, end: number, options: WalkOptions): void {
  const itemEnd = walk(bytes, start, end, 0, options)
  if (itemEnd !== end) throw new CborScanError(`${end - itemEnd} bytes after the item`, itemEnd)
}

function walk (bytes: Uint8Array, pos: number, end: number, depth: number, options: WalkOptions): number {
  return walkFrom(bytes, readHead(bytes, pos, end), end, depth, options)
}

/** walk, for an item whose head was read already. */
function walkFrom (bytes: Uint8Array, head: Head, end: number, depth: number, options: WalkOptions): number {
  const pos = head.start
  switch (head.major) {
    case 0:
    case 1:
      if (head.info === 27 && options.stats) options.stats.bigInts = true
      return head.next
    case 2:
    case 3:
      return walkString(bytes, head, end, options)
    case 4:
    case 5:
      if (depth + 1 > options.depthMax) throw new CborScanError(`nesting deeper than ${options.depthMax}`, pos)
      return head.major === 4 ? walkArray(bytes, head, end, depth + 1, options) : walkMap(bytes, head, end, depth + 1, options)
    case 6:
      return walkTag(bytes, head, end, depth, options)
    default:
      return walkSimple(bytes, head, options)
  }
}

function walkString (bytes: Uint8Array, head: Head, end: number, options: WalkOptions): number {
  if (head.info !== 31) return definiteStringEnd(bytes, head, end, options)
  if (options.stats) options.stats.indefiniteStrings = true
  // RFC 8949 §3.2.3: the chunks are definite-length strings of the same major type.
  let pos = head.next
  for (;;) {
    if (pos >= end) throw new CborScanError('unexpected end of input in an indefinite-length string', pos)
    if (bytes[pos] === BREAK) return pos + 1
    const chunk = readHead(bytes, pos, end)
    if (chunk.major !== head.major || chunk.info === 31) {
      throw new CborScanError('an indefinite-length string chunk must be a definite string of the same type', pos)
    }
    pos = definiteStringEnd(bytes, chunk, end, options)
  }
}

function definiteStringEnd (bytes: Uint8Array, head: Head, end: number, options: WalkOptions): number {
  const length = head.value
  if (typeof length !== 'number' || length > end - head.next) {
    throw new CborScanError('string runs past the end of the input', head.start)
  }
  const stringEnd = head.next + length
  if (options.strict && head.major === 3 && !isUtf8(bytes, head.next, stringEnd)) {
    throw new CborScanError('text string is not valid UTF-8', head.start)
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

function walkArray (bytes: Uint8Array, head: Head, end: number, depth: number, options: WalkOptions): number {
  let pos = head.next
  if (head.info === 31) {
    for (;;) {
      if (pos >= end) throw new CborScanError('unexpected end of input in an indefinite-length array', pos)
      if (bytes[pos] === BREAK) return pos + 1
      pos = walk(bytes, pos, end, depth, options)
    }
  }
  const count = head.value
  // Every item takes at least one byte: a count beyond what is left is a lie, refused
  // before any loop runs on it.
  if (typeof count !== 'number' || count > end - pos) throw new CborScanError('array runs past the end of the input', head.start)
  for (let i = 0; i < count; i++) pos = walk(bytes, pos, end, depth, options)
  return pos
}

function walkMap (bytes: Uint8Array, head: Head, end: number, depth: number, options: WalkOptions): number {
  let pos = head.next
  const indefinite = head.info === 31
  const count = head.value
  if (!indefinite && (typeof count !== 'number' || count * 2 > end - pos)) {
    throw new CborScanError('map runs past the end of the input', head.start)
  }
  // Key identities, to refuse duplicates: a list for the usual small map, a Set past that.
  let list: string[] | null = null
  let set: Set<string> | null = null
  for (let i = 0; indefinite || i < (count as number); i++) {
    if (indefinite) {
      if (pos >= end) throw new CborScanError('unexpected end of input in an indefinite-length map', pos)
      if (bytes[pos] === BREAK) return pos + 1
    }
    const key = readHead(bytes, pos, end)
    pos = walkFrom(bytes, key, end, depth, options)
    if (options.strict) {
      const identity = keyIdentity(bytes, key, pos, end)
      if (set === null && (list ??= []).length < SMALL_MAP_KEYS) {
        if (list.includes(identity)) throw new CborScanError('duplicate map key', key.start)
        list.push(identity)
      } else {
        set ??= new Set(list)
        if (set.has(identity)) throw new CborScanError('duplicate map key', key.start)
        set.add(identity)
      }
      if (options.stats && options.stats.plainKeys && !isPlainKey(bytes, key, pos)) options.stats.plainKeys = false
    }
    pos = walk(bytes, pos, end, depth, options)
  }
  return pos
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

function isPlainKey (bytes: Uint8Array, head: Head, stop: number): boolean {
  if (head.major !== 3) return false
  // A chunked key is judged plain here: the decoder never builds objects directly from
  // input with chunked strings (see indefiniteStrings).
  if (head.info === 31) return true
  if (stop - head.next !== PROTO_KEY.length) return true
  for (let i = 0; i < PROTO_KEY.length; i++) if (bytes[head.next + i] !== PROTO_KEY[i]) return true
  return false
}

function latin1 (bytes: Uint8Array): string {
  let out = ''
  for (let i = 0; i < bytes.length; i += 4096) {
    out += String.fromCharCode.apply(null, bytes.subarray(i, i + 4096) as unknown as number[])
  }
  return out
}

function walkTag (bytes: Uint8Array, head: Head, end: number, depth: number, options: WalkOptions): number {
  if (depth + 1 > options.depthMax) throw new CborScanError(`nesting deeper than ${options.depthMax}`, head.start)
  if (options.strict) {
    if (head.value !== 2 && head.value !== 3) {
      throw new CborScanError(`tag ${head.value} is not allowed here (only 2 and 3, bignums)`, head.start)
    }
    const content = readHead(bytes, head.next, end)
    if (content.major !== 2) throw new CborScanError('a bignum tag must hold a byte string', head.next)
    if (options.stats) options.stats.bigInts = true
  }
  return walk(bytes, head.next, end, depth + 1, options)
}

function walkSimple (bytes: Uint8Array, head: Head, options: WalkOptions): number {
  const { info } = head
  if (info === 31) throw new CborScanError('break outside an indefinite-length item', head.start)
  if (info === 24) {
    // RFC 8949 §3.3: simple values below 32 must use the one-byte form.
    if ((head.value as number) < 32) throw new CborScanError('two-byte simple value below 32 is not well formed', head.start)
    if (options.strict) throw new CborScanError(`simple value ${head.value} is not allowed`, head.start)
    return head.next
  }
  if (info >= 25) return head.next // half, single and double floats
  if (options.strict && (info < 20 || info === 23)) {
    throw new CborScanError(info === 23 ? 'undefined is not allowed' : `simple value ${info} is not allowed`, head.start)
  }
  return head.next
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

/** The items of the array whose head is given, as [start, end) offsets. Walked leniently already. */
export function arrayItems (bytes: Uint8Array, head: Head, end: number): Array<[number, number]> {
  const items: Array<[number, number]> = []
  const lenient: WalkOptions = { strict: false, depthMax: Number.MAX_SAFE_INTEGER }
  const indefinite = head.info === 31
  let pos = head.next
  for (let i = 0; indefinite || i < (head.value as number); i++) {
    if (indefinite && bytes[pos] === BREAK) break
    const itemEnd = walk(bytes, pos, end, 0, lenient)
    items.push([pos, itemEnd])
    pos = itemEnd
  }
  return items
}
