import assert from 'node:assert/strict'
import { test } from 'node:test'
import { compilePathPattern, requestPath } from '../../src/cage/path-pattern.js'

function matches (pattern: string, url: string): boolean {
  return compilePathPattern(pattern).test(requestPath(url))
}

test('literal segments match exactly, case-sensitively, with or without a trailing slash', () => {
  assert.equal(matches('/healthz', '/healthz'), true)
  assert.equal(matches('/healthz', '/healthz/'), true)
  assert.equal(matches('/healthz', '/healthz?x=1'), true)
  assert.equal(matches('/healthz', '/Healthz'), false)
  assert.equal(matches('/healthz', '/healthzz'), false)
  assert.equal(matches('/healthz', '/healthz/x'), false)
  assert.equal(matches('/v1/me', '/v1/me#frag'), true)
  assert.equal(matches('/', '/'), true)
  assert.equal(matches('/', '/x'), false)
  assert.equal(matches('/a.b', '/aXb'), false) // regex characters are literal
  assert.equal(matches('/a+b', '/a+b'), true)
})

test('* is exactly one non-empty segment', () => {
  const pattern = '/v1/devices/*/state'
  assert.equal(matches(pattern, '/v1/devices/abc/state'), true)
  assert.equal(matches(pattern, '/v1/devices/abc/state/'), true)
  assert.equal(matches(pattern, '/v1/devices//state'), false)
  assert.equal(matches(pattern, '/v1/devices/a/b/state'), false)
  assert.equal(matches(pattern, '/v1/devices/abc'), false)
  assert.equal(matches('/v1/*', '/v1/devices'), true)
  assert.equal(matches('/v1/*', '/v1'), false)
})

test('** (last) is any rest, including none', () => {
  assert.equal(matches('/v1/**', '/v1'), true)
  assert.equal(matches('/v1/**', '/v1/'), true)
  assert.equal(matches('/v1/**', '/v1/devices/abc/state'), true)
  assert.equal(matches('/v1/**', '/v10'), false)
  assert.equal(matches('/v1/**', '/v2/devices'), false)
  assert.equal(matches('/**', '/anything/at/all'), true)
  assert.equal(matches('/v1/*/x/**', '/v1/a/x'), true)
  assert.equal(matches('/v1/*/x/**', '/v1/a/y/z'), false)
})

test('requests are matched decoded as the router routes them, so encoding cannot slip past a rule', () => {
  assert.equal(requestPath('/v1/devices/x/%73tate'), '/v1/devices/x/state')
  assert.equal(matches('/v1/devices/*/state', '/v1/devices/x/%73tate'), true)
  assert.equal(matches('/healthz', '/%68ealthz'), true)
  // Reserved characters stay encoded, as the router keeps them: %2F does not split a segment.
  assert.equal(requestPath('/v1/a%2Fb'), '/v1/a%2Fb')
  assert.equal(matches('/v1/*', '/v1/a%2Fb'), true)
  assert.equal(matches('/v1/a/b', '/v1/a%2Fb'), false)
  // %25 stays %25, so nothing is decoded twice.
  assert.equal(requestPath('/v1/%2573tate'), '/v1/%2573tate')
  // Malformed encoding: the router answers 400 on its own; the raw path is kept.
  assert.equal(requestPath('/v1/%E0%A4%A'), '/v1/%E0%A4%A')
  assert.equal(requestPath('/a?b%2F=1'), '/a')
})

test('bad patterns are refused with the reason', () => {
  const cases: Array<[string, RegExp]> = [
    ['v1/devices', /must start with "\/"/],
    ['/v1/devices/', /must not end with "\/"/],
    ['/v1//devices', /empty segment/],
    ['/v1/**/state', /"\*\*" only as its last segment/],
    ['/v1/dev*', /"\*" inside the segment "dev\*"/],
    ['/v1/a?b', /character "\?"/],
    ['/v1/a%20b', /character "%"/],
    ['/v1/a b', /character " "/],
    ['/' + 'a'.repeat(600), /at most 512 characters/],
  ]
  for (const [pattern, message] of cases) {
    assert.throws(() => compilePathPattern(pattern), message, pattern)
  }
})
