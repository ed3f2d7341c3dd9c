import { test } from 'node:test'
import assert from 'node:assert/strict'
import { CborScanError, readHead, walkWhole } from '../../src/protocol/cbor-scan.js'
import { c, unhex } from './helpers.js'

const strict = { strict: true, depthMax: 32 }
const lenient = { strict: false, depthMax: 32 }

function accepts (bytes: Uint8Array, options = strict): void {
  walkWhole(bytes, 0, bytes.length, options)
}

function refuses (bytes: Uint8Array, pattern: RegExp, options = strict): void {
  assert.throws(() => walkWhole(bytes, 0, bytes.length, options), (err: unknown) => {
    assert.ok(err instanceof CborScanError, `expected CborScanError, got ${String(err)}`)
    assert.match(err.message, pattern)
    return true
  })
}

test('heads of every width give the same value', () => {
  for (const width of [0, 1, 2, 4, 8] as const) {
    const bytes = c.uint(23, width)
    const head = readHead(bytes, 0, bytes.length)
    assert.equal(head.value, 23)
    assert.equal(head.next, 1 + width)
  }
  const huge = c.uint(2n ** 64n - 1n)
  assert.equal(readHead(huge, 0, huge.length).value, 2n ** 64n - 1n)
  const safe = c.uint(Number.MAX_SAFE_INTEGER)
  assert.equal(readHead(safe, 0, safe.length).value, Number.MAX_SAFE_INTEGER)
  const beyond = c.uint(BigInt(Number.MAX_SAFE_INTEGER) + 1n)
  assert.equal(readHead(beyond, 0, beyond.length).value, BigInt(Number.MAX_SAFE_INTEGER) + 1n)
})

test('reserved additional information 28-30 is not well formed', () => {
  for (const info of [28, 29, 30]) {
    for (const major of [0, 2, 4, 7]) refuses(Uint8Array.of((major << 5) | info), /reserved additional information/, lenient)
  }
})

test('indefinite length only where RFC 8949 allows it', () => {
  refuses(Uint8Array.of(0x1f), /not allowed for major type 0/, lenient)
  refuses(Uint8Array.of(0x3f), /not allowed for major type 1/, lenient)
  refuses(Uint8Array.of(0xdf, 0x01), /not allowed for major type 6/, lenient)
  refuses(Uint8Array.of(0xff), /break outside/, lenient)
  // A break between a key and its value.
  refuses(unhex('bf 01 ff'), /break outside/, lenient)
})

test('indefinite strings, arrays and maps are accepted', () => {
  accepts(c.chunked(2, c.bstr(Uint8Array.of(1)), c.bstr(Uint8Array.of(2, 3))))
  accepts(c.chunked(3, c.tstr('ab'), c.tstr('c')))
  accepts(c.chunked(3))
  accepts(c.arrayIndef(c.uint(1), c.arrayIndef()))
  accepts(c.mapIndef([c.tstr('a'), c.mapIndef()]))
})

test('chunks of an indefinite string must be definite strings of the same type', () => {
  refuses(c.chunked(3, c.bstr(Uint8Array.of(0x61))), /chunk/, lenient)
  refuses(c.chunked(2, c.chunked(2)), /chunk/, lenient)
  refuses(c.chunked(2, c.uint(1)), /chunk/, lenient)
})

test('truncation anywhere is refused', () => {
  const whole = c.map([c.tstr('key'), c.array(c.uint(1000), c.bstr(new Uint8Array(10)))])
  for (let cut = 0; cut < whole.length; cut++) {
    assert.throws(() => walkWhole(whole, 0, cut, lenient), CborScanError, `cut at ${cut}`)
  }
  accepts(whole)
})

test('counts beyond the input are refused before any loop runs', () => {
  refuses(unhex('9b 00 00 00 00 ff ff ff ff'), /array runs past/, lenient)
  refuses(unhex('bb 7f ff ff ff ff ff ff ff'), /map runs past/, lenient)
  refuses(unhex('5a ff ff ff ff 00'), /string runs past/, lenient)
})

test('trailing bytes after the item are refused', () => {
  refuses(unhex('01 02'), /1 bytes after the item/, lenient)
})

test('nesting is bounded', () => {
  let deep = c.uint(0)
  for (let i = 0; i < 32; i++) deep = c.array(deep)
  accepts(deep)
  refuses(c.array(deep), /nesting deeper than 32/, lenient)
  let tags = c.bstr(new Uint8Array(1))
  for (let i = 0; i < 33; i++) tags = c.tag(100, tags)
  refuses(tags, /nesting deeper than 32/, lenient)
})

test('strict mode refuses every tag but bignums, whose content must be bytes', () => {
  accepts(c.tag(2, c.bstr(Uint8Array.of(1, 0, 0, 0, 0, 0, 0, 0, 0))))
  accepts(c.tag(3, c.chunked(2, c.bstr(Uint8Array.of(1)))))
  refuses(c.tag(2, c.uint(1)), /bignum tag must hold a byte string/)
  for (const tag of [0, 1, 18, 24, 51, 64, 259, 55799, 57343, 51966]) {
    refuses(c.tag(tag, c.array()), new RegExp(`tag ${tag} is not allowed`))
    accepts(c.tag(tag, c.array()), lenient)
  }
  // A cbor-x record definition (tag 57343) inside a body.
  refuses(c.map([c.tstr('x'), c.tag(57343, c.array(c.uint(0x40), c.array(c.tstr('a'))))]), /tag 57343/)
})

test('strict mode allows false, true, null and floats only among simple values', () => {
  for (const ok of ['f4', 'f5', 'f6', 'f93c00', 'fa3f800000', 'fb3ff0000000000000']) accepts(unhex(ok))
  refuses(unhex('f7'), /undefined is not allowed/)
  refuses(unhex('e0'), /simple value 0 is not allowed/)
  refuses(unhex('f820'), /simple value 32 is not allowed/)
  accepts(unhex('f820'), lenient)
  refuses(unhex('f818'), /below 32 is not well formed/, lenient)
})

test('strict mode refuses invalid UTF-8, chunk by chunk', () => {
  accepts(c.tstr('grüße ✓ 𝄞'))
  refuses(unhex('62 c3 28'), /not valid UTF-8/)
  refuses(unhex('63 ed a0 80'), /not valid UTF-8/) // an encoded surrogate
  refuses(unhex('62 c0 80'), /not valid UTF-8/) // overlong NUL
  // A code point split across chunks is invalid: each chunk is a text string on its own.
  refuses(c.chunked(3, unhex('61 c3'), unhex('61 bc')), /not valid UTF-8/)
  accepts(unhex('62 c3 28'), lenient)
})

test('strict mode refuses duplicate keys, whatever their encoding', () => {
  refuses(c.map([c.uint(1), c.uint(0)], [c.uint(1, 8), c.uint(0)]), /duplicate map key/)
  refuses(c.map([c.tstr('a'), c.uint(0)], [c.chunked(3, c.tstr('a')), c.uint(0)]), /duplicate map key/)
  refuses(c.mapIndef([c.tstr('ab'), c.uint(0)], [c.tstr('ab'), c.uint(1)]), /duplicate map key/)
  refuses(c.map([c.nint(-1), c.uint(0)], [c.nint(-1, 2), c.uint(0)]), /duplicate map key/)
  accepts(c.map([c.uint(1), c.uint(0)], [c.nint(-2), c.uint(0)], [c.tstr('1'), c.uint(0)], [c.bstr(Uint8Array.of(0x31)), c.uint(0)]))
  accepts(c.map([c.uint(1), c.uint(0)], [c.uint(1), c.uint(0)]), lenient)
})
