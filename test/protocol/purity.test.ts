/**
 * src/protocol is shared with the device SDK, which runs in browsers: no node-only
 * imports or globals, NodeNext-style .js imports, and it bundles for the browser.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { build } from 'esbuild'

const dir = fileURLToPath(new URL('../../src/protocol/', import.meta.url))
const sources = readdirSync(dir).filter((name) => name.endsWith('.ts'))

test('no node-only imports or globals, no I/O, no logging', () => {
  const allowedPackages = new Set(['cbor-x', 'fflate', '@noble/hashes/sha2.js', '@noble/hashes/utils.js'])
  for (const name of sources) {
    const text = readFileSync(join(dir, name), 'utf8')
    const code = text.replace(/\/\*[\s\S]*?\*\//g, '').replace(/\/\/.*$/gm, '')
    for (const [, spec] of code.matchAll(/from '([^']+)'/g)) {
      if (spec.startsWith('.')) assert.match(spec, /^\.\/[a-z0-9-]+\.js$/, `${name}: relative imports end in .js (${spec})`)
      else assert.ok(allowedPackages.has(spec), `${name} imports ${spec}`)
    }
    for (const forbidden of [/\bBuffer\b/, /\bprocess\./, /\bconsole\./, /\brequire\(/, /\bsetTimeout\b/, /\bfetch\(/]) {
      assert.doesNotMatch(code, forbidden, `${name} uses ${forbidden}`)
    }
  }
})

test('it bundles for the browser', async () => {
  const result = await build({
    entryPoints: [join(dir, 'index.ts')],
    bundle: true,
    platform: 'browser',
    format: 'esm',
    write: false,
    logLevel: 'silent',
  })
  assert.equal(result.errors.length, 0)
  const text = result.outputFiles[0].text
  assert.doesNotMatch(text, /from ["']node:/)
  assert.doesNotMatch(text, /require\(["'](crypto|zlib|buffer|stream)["']\)/)
})
