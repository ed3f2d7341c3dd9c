/**
 * The pure document functions: RFC 7396 merge patch (its Appendix A vectors), per-field
 * timestamps, the deep delta, the checks on untrusted values, and size accounting.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import {
  mergeSection, computeDelta, patchProblem, jsonEqual, documentBytes, utf8Bytes, isJsonObject,
  type JsonObject, type MetaTree,
} from '../../src/state/documents.js'

const T1 = 1_767_225_600_000
const T2 = T1 + 1_000

function merge (target: JsonObject, patch: JsonObject, meta: MetaTree = {}, nowMs = T1): { section: JsonObject, meta: MetaTree } {
  assert.equal(patchProblem(patch, 8), null, 'the vectors are valid patches')
  return mergeSection(target, meta, patch, nowMs)
}

test('merge patch: the RFC 7396 Appendix A vectors whose target and patch are objects', () => {
  const vectors: Array<[JsonObject, JsonObject, JsonObject]> = [
    [{ a: 'b' }, { a: 'c' }, { a: 'c' }],
    [{ a: 'b' }, { b: 'c' }, { a: 'b', b: 'c' }],
    [{ a: 'b' }, { a: null }, {}],
    [{ a: 'b', b: 'c' }, { a: null }, { b: 'c' }],
    [{ a: ['b'] }, { a: 'c' }, { a: 'c' }],
    [{ a: 'c' }, { a: ['b'] }, { a: ['b'] }],
    [{ a: { b: 'c' } }, { a: { b: 'd', c: null } }, { a: { b: 'd' } }],
    [{ a: [{ b: 'c' }] }, { a: [1] }, { a: [1] }],
    [{ e: null }, { a: 1 }, { e: null, a: 1 }],
    [{}, { a: { bb: { ccc: null } } }, { a: { bb: {} } }],
  ]
  for (const [target, patch, expected] of vectors) {
    const before = structuredClone(target)
    assert.deepEqual(merge(target, patch).section, expected, JSON.stringify([target, patch]))
    assert.deepEqual(target, before, 'the target is not changed')
  }
})

test('merge patch: nested objects merge, a patch object replaces a non-object, null inside an array is a value', () => {
  const target = { fan: { speed: 2, mode: 'auto', limits: { min: 1, max: 5 } }, led: 'on', list: [1, 2] }
  const { section } = merge(target, { fan: { speed: 3, limits: { max: null } }, led: { color: 'red', off: null }, list: [null, 1] })
  assert.deepEqual(section, { fan: { speed: 3, mode: 'auto', limits: { min: 1 } }, led: { color: 'red' }, list: [null, 1] })
})

test('merge patch: keys named like Object.prototype members are plain data', () => {
  const { section } = merge({}, { constructor: { a: 1 }, toString: 'x', hasOwnProperty: null })
  assert.deepEqual(Object.keys(section), ['constructor', 'toString'])
  assert.deepEqual(section.constructor, { a: 1 })
  assert.equal(section.toString, 'x')
  assert.deepEqual(JSON.parse(JSON.stringify(section)), { constructor: { a: 1 }, toString: 'x' })
})

test('timestamps: every value a patch sets gets its time, deleted keys lose theirs, the rest keep theirs', () => {
  const first = merge({}, { led: 'on', fan: { speed: 2, mode: 'auto' }, list: [1] }, {}, T1)
  assert.deepEqual(first.meta, { led: T1, fan: { speed: T1, mode: T1 }, list: T1 })

  const second = mergeSection(first.section, first.meta, { fan: { speed: 3 }, list: null, extra: {} }, T2)
  assert.deepEqual(second.section, { led: 'on', fan: { speed: 3, mode: 'auto' }, extra: {} })
  assert.deepEqual(second.meta, { led: T1, fan: { speed: T2, mode: T1 }, extra: {} })

  // An object replaced by a value, and a value replaced by an object.
  const third = mergeSection(second.section, second.meta, { fan: 'off', led: { color: 'red' } }, T2 + 1)
  assert.deepEqual(third.section, { led: { color: 'red' }, fan: 'off', extra: {} })
  assert.deepEqual(third.meta, { led: { color: T2 + 1 }, fan: T2 + 1, extra: {} })
  // Setting the same value again is a change too: its time moves.
  assert.deepEqual(mergeSection(third.section, third.meta, { fan: 'off' }, T2 + 2).meta.fan, T2 + 2)
})

test('delta: what desired asks that reported does not show, deep, arrays and values compared whole', () => {
  const desired = { color: 'red', cfg: { a: 1, b: 2, deep: { x: [1, { y: 2 }] } }, list: [1, 2], obj: { k: 1 }, only: true, empty: {} }
  const reported = { color: 'red', cfg: { a: 1, b: 3, deep: { x: [1, { y: 2 }] } }, list: [1], obj: 'flat', extra: 5, empty: {} }
  assert.deepEqual(computeDelta(desired, reported), { cfg: { b: 2 }, list: [1, 2], obj: { k: 1 }, only: true })
  assert.deepEqual(computeDelta(desired, desired), {})
  assert.deepEqual(computeDelta({}, reported), {}, 'keys only reported has are not in the delta')
  assert.deepEqual(computeDelta({ a: { b: 1 } }, {}), { a: { b: 1 } })
  assert.deepEqual(computeDelta({ n: 1 }, { n: 1.0 }), {})
  assert.deepEqual(computeDelta({ n: 0 }, { n: false }), { n: 0 }, 'no loose equality')
  assert.deepEqual(computeDelta({ toString: 1 }, {}), { toString: 1 }, 'inherited members are not reported values')
})

test('jsonEqual: deep, key order free, arrays ordered', () => {
  assert.equal(jsonEqual({ a: 1, b: [1, { c: null }] }, { b: [1, { c: null }], a: 1 }), true)
  assert.equal(jsonEqual([1, 2], [2, 1]), false)
  assert.equal(jsonEqual({ a: 1 }, { a: 1, b: 2 }), false)
  assert.equal(jsonEqual({ a: undefined as never }, { b: 1 }), false)
  assert.equal(jsonEqual([], {}), false)
  assert.equal(jsonEqual(null, {}), false)
})

test('patchProblem: JSON objects pass; everything JSON cannot carry is named with its path', () => {
  assert.equal(patchProblem({ a: 1, b: 'x', c: true, d: null, e: [null, 1.5, { f: [] }] }, 8), null)
  const cases: Array<[unknown, RegExp]> = [
    [[], /^patch must be an object$/],
    [null, /^patch must be an object$/],
    ['x', /^patch must be an object$/],
    [new Map([[1, 2]]), /^patch must be an object$/],
    [{ a: new Uint8Array(2) }, /^patch\.a is a byte string/],
    [{ a: { b: new Map([[1, 2]]) } }, /^patch\.a\.b is a map with non-text keys/],
    [{ a: Number.NaN }, /^patch\.a is NaN/],
    [{ a: [1, Number.POSITIVE_INFINITY] }, /^patch\.a\[1\] is Infinity/],
    [{ a: 2n ** 64n }, /^patch\.a is an integer beyond 2\^53/],
    [{ a: undefined }, /^patch\.a is undefined/],
    [{ a: () => 1 }, /^patch\.a is a function/],
    [{ a: new Date(0) }, /^patch\.a is a map with non-text keys or another non-JSON value/],
    [JSON.parse('{"a": {"__proto__": 1}}'), /^patch\.a has the key "__proto__"/],
  ]
  for (const [value, message] of cases) assert.match(patchProblem(value, 8) ?? '', message, String(message))
  assert.equal(isJsonObject(Object.create(null)), true)
})

test('patchProblem: depth counts objects and arrays, a flat map is 1, and a very deep value is refused without recursion trouble', () => {
  assert.equal(patchProblem({ a: 1 }, 1), null)
  assert.equal(patchProblem({ a: {} }, 1), 'patch.a nests deeper than 1 levels')
  assert.equal(patchProblem({ a: { b: [1] } }, 3), null)
  assert.equal(patchProblem({ a: { b: [[1]] } }, 3), 'patch.a.b[0] nests deeper than 3 levels')
  assert.equal(patchProblem({ a: { b: null } }, 2), null)
  let deep: unknown = 1
  for (let i = 0; i < 200_000; i++) deep = [deep]
  assert.match(patchProblem({ deep }, 8) ?? '', /nests deeper than 8 levels/)
})

test('size: UTF-8 bytes of desired and reported as compact JSON', () => {
  for (const text of ['', 'abc', 'é', '€', '😀', 'a\u0000b', '\ud800', '\udc00x', 'x\ud83d']) {
    assert.equal(utf8Bytes(text), Buffer.byteLength(text, 'utf8'), JSON.stringify(text))
  }
  const sections = { desired: { led: 'on', name: 'Grüße 😀' }, reported: { list: [1, 2.5, null] } }
  assert.equal(documentBytes(sections), Buffer.byteLength(JSON.stringify(sections.desired)) + Buffer.byteLength(JSON.stringify(sections.reported)))
  assert.equal(documentBytes({ desired: {}, reported: {} }), 4)
})
