/**
 * State documents as pure functions (docs/protocol.md §14): JSON merge patch (RFC 7396)
 * that also keeps per-field timestamps, the delta between desired and reported, and the
 * checks and size accounting every change passes. No I/O, no logger, no config.
 *
 * Values are JSON values: what a document holds must read back the same from SQLite, over
 * HTTP and over MQTT (CBOR). Objects are ordinary objects whose keys are set with
 * defineProperty and read through `own`, so no key ("constructor", say) ever resolves to
 * something inherited.
 */

export type JsonPrimitive = string | number | boolean | null
export type JsonValue = JsonPrimitive | JsonValue[] | JsonObject
export interface JsonObject { [key: string]: JsonValue }

/**
 * Per-field timestamps: the tree mirrors a section, an object for each object of the
 * section and, for every other value (arrays included), the ms at which it was last set.
 */
export type MetaTree = { [key: string]: MetaTree | number }

export interface StateSections {
  desired: JsonObject
  reported: JsonObject
}

export interface StateMeta {
  desired: MetaTree
  reported: MetaTree
}

/** The key JSON parsers and JavaScript treat as the prototype: refused everywhere, for one meaning on every path. */
const FORBIDDEN_KEY = '__proto__'

/** True for a JSON object as JSON.parse or decodeCbor produce it (never an array, Map or bytes). */
export function isJsonObject (value: unknown): value is JsonObject {
  if (typeof value !== 'object' || value === null) return false
  const proto = Object.getPrototypeOf(value)
  return proto === Object.prototype || proto === null
}

/** value[key] when key is the object's own property; never an inherited one. */
export function own<T> (object: Record<string, T>, key: string): T | undefined {
  return Object.hasOwn(object, key) ? object[key] : undefined
}

function setOwn<T> (object: Record<string, T>, key: string, value: T): void {
  Object.defineProperty(object, key, { value, enumerable: true, writable: true, configurable: true })
}

/**
 * Why value cannot be a patch of a state section, or null when it can: a JSON object whose
 * values are JSON values (null deletes a key, RFC 7396; inside arrays it is a value),
 * nested at most depthMax levels. Untrusted input never throws: the walk stops at the
 * first problem and never goes deeper than depthMax + 1, so the stack is bounded too.
 */
export function patchProblem (value: unknown, depthMax: number, path = 'patch'): string | null {
  if (!isJsonObject(value)) return `${path} must be an object`
  return valueProblem(value, depthMax, 1, path)
}

function valueProblem (value: unknown, depthMax: number, depth: number, path: string): string | null {
  switch (typeof value) {
    case 'string':
    case 'boolean':
      return null
    case 'number':
      return Number.isFinite(value) ? null : `${path} is ${String(value)}, which JSON cannot carry`
    case 'bigint':
      return `${path} is an integer beyond 2^53, which JSON cannot carry exactly`
    case 'object':
      break
    case 'undefined':
      return `${path} is undefined, which JSON cannot carry`
    default:
      return `${path} is a ${typeof value}, which JSON cannot carry`
  }
  if (value === null) return null
  if (depth > depthMax) return `${path} nests deeper than ${depthMax} levels`
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      const problem = valueProblem(value[i], depthMax, depth + 1, `${path}[${i}]`)
      if (problem) return problem
    }
    return null
  }
  if (!isJsonObject(value)) {
    return value instanceof Uint8Array
      ? `${path} is a byte string, which JSON cannot carry`
      : `${path} is a map with non-text keys or another non-JSON value`
  }
  for (const key of Object.keys(value)) {
    if (key === FORBIDDEN_KEY) return `${path} has the key "__proto__", which state documents refuse`
    const problem = valueProblem(value[key], depthMax, depth + 1, `${path}.${key}`)
    if (problem) return problem
  }
  return null
}

export interface Merged {
  section: JsonObject
  meta: MetaTree
}

/**
 * RFC 7396 JSON merge patch of one section, with its timestamps: every value the patch
 * sets gets nowMs (for an object, each of its leaves), every key it deletes loses its
 * timestamp, and what the patch does not name keeps its own. The inputs are not changed;
 * unchanged subtrees are shared with the result. The patch must have passed patchProblem.
 * The result nests no deeper than the deeper of section and patch, so checking the patch
 * against depthMax keeps every stored section within it.
 */
export function mergeSection (section: JsonObject, meta: MetaTree, patch: JsonObject, nowMs: number): Merged {
  const result: JsonObject = {}
  const resultMeta: MetaTree = {}
  for (const key of Object.keys(section)) setOwn(result, key, section[key])
  for (const key of Object.keys(meta)) setOwn(resultMeta, key, meta[key])
  for (const key of Object.keys(patch)) {
    const value = patch[key]
    if (value === null) {
      delete result[key]
      delete resultMeta[key]
    } else if (isJsonObject(value)) {
      // RFC 7396: a patch object merges into the target's object, or into {} when the
      // target holds anything else there (whose timestamps go with it).
      const before = own(section, key)
      const beforeMeta = own(meta, key)
      const target = isJsonObject(before) ? before : {}
      const targetMeta = isJsonObject(before) && typeof beforeMeta === 'object' ? beforeMeta : {}
      const merged = mergeSection(target, targetMeta, value, nowMs)
      setOwn(result, key, merged.section)
      setOwn(resultMeta, key, merged.meta)
    } else {
      setOwn(result, key, value)
      setOwn(resultMeta, key, nowMs)
    }
  }
  return { section: result, meta: resultMeta }
}

/**
 * The delta: what desired asks for that reported does not show yet. Deep, as in AWS IoT
 * Device Shadow: for an object present on both sides, only its differing members; an
 * array or any other value is compared whole. Keys only reported has are not in it.
 */
export function computeDelta (desired: JsonObject, reported: JsonObject): JsonObject {
  const delta: JsonObject = {}
  for (const key of Object.keys(desired)) {
    const want = desired[key]
    const have = own(reported, key)
    if (isJsonObject(want) && isJsonObject(have)) {
      const inner = computeDelta(want, have)
      if (Object.keys(inner).length > 0) setOwn(delta, key, inner)
    } else if (have === undefined || !jsonEqual(want, have)) {
      setOwn(delta, key, want)
    }
  }
  return delta
}

/** Deep equality of JSON values (object key order does not matter). */
export function jsonEqual (a: JsonValue, b: JsonValue): boolean {
  if (a === b) return true
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false
  if (Array.isArray(a) || Array.isArray(b)) {
    if (!Array.isArray(a) || !Array.isArray(b) || a.length !== b.length) return false
    return a.every((item, i) => jsonEqual(item, b[i]))
  }
  const keys = Object.keys(a)
  if (keys.length !== Object.keys(b).length) return false
  return keys.every(key => Object.hasOwn(b, key) && jsonEqual(a[key], b[key]))
}

/** UTF-8 length of a string, without allocating (a lone surrogate counts 3, as its replacement character would). */
export function utf8Bytes (text: string): number {
  let bytes = 0
  for (let i = 0; i < text.length; i++) {
    const unit = text.charCodeAt(i)
    if (unit < 0x80) bytes += 1
    else if (unit < 0x800) bytes += 2
    else if (unit >= 0xd800 && unit <= 0xdbff && i + 1 < text.length && (text.charCodeAt(i + 1) & 0xfc00) === 0xdc00) {
      bytes += 4
      i++
    } else bytes += 3
  }
  return bytes
}

/** A document's size as the cap counts it: its desired and reported as compact JSON, in UTF-8 bytes. */
export function documentBytes (sections: StateSections): number {
  return utf8Bytes(JSON.stringify(sections.desired)) + utf8Bytes(JSON.stringify(sections.reported))
}
