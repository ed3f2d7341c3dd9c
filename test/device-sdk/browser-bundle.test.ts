/**
 * The main entry must run in browsers: bundle it as a browser app would and refuse any
 * Node built-in on the way, node:crypto above all (design.md: @noble crypto only).
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { builtinModules } from 'node:module'
import { fileURLToPath } from 'node:url'
import { build, type Plugin } from 'esbuild'

const entry = fileURLToPath(new URL('../../device-sdk/index.ts', import.meta.url))
const builtins = new Set(builtinModules.flatMap(name => [name, `node:${name}`]))

function refuseNodeBuiltins (seen: string[]): Plugin {
  return {
    name: 'refuse-node-builtins',
    setup (b) {
      b.onResolve({ filter: /.*/ }, args => {
        const bare = args.path.split('/')[0]
        if (args.path.startsWith('node:') || builtins.has(args.path) || (builtins.has(bare) && !args.path.startsWith('.'))) {
          seen.push(`${args.path} (imported by ${args.importer})`)
          return { errors: [{ text: `Node built-in "${args.path}" in the browser bundle, imported by ${args.importer}` }] }
        }
        return undefined
      })
    },
  }
}

test('device-sdk/index.ts bundles for the browser with no Node built-ins', async () => {
  const seen: string[] = []
  const result = await build({
    entryPoints: [entry],
    bundle: true,
    platform: 'browser',
    format: 'esm',
    write: false,
    logLevel: 'silent',
    plugins: [refuseNodeBuiltins(seen)],
  }).catch((err: Error) => {
    assert.fail(`the browser bundle failed: ${err.message}\nNode built-ins seen: ${seen.join(', ') || 'none'}`)
  })
  assert.deepEqual(seen, [])
  assert.equal(result.errors.length, 0)
  const code = result.outputFiles[0].text
  assert.ok(code.length > 0)
  assert.ok(!code.includes('node:crypto'), 'the bundle mentions node:crypto')
  assert.ok(!/require\(["']crypto["']\)/.test(code), 'the bundle requires crypto')
  assert.ok(!code.includes('createHash('), 'the bundle calls a Node hash')
})

test('the Node entry is the one that may use node: modules', async () => {
  const seen: string[] = []
  await assert.rejects(build({
    entryPoints: [fileURLToPath(new URL('../../device-sdk/node.ts', import.meta.url))],
    bundle: true,
    platform: 'browser',
    format: 'esm',
    write: false,
    logLevel: 'silent',
    plugins: [refuseNodeBuiltins(seen)],
  }))
  assert.ok(seen.some(s => s.startsWith('node:fs')), 'the guard catches node:fs, so it would catch node:crypto in the main entry')
})

test('device-sdk/zk.ts bundles for the browser with snarkjs\'s browser build and no Node built-ins; the main entry has no snarkjs', async () => {
  const seen: string[] = []
  const bundle = (entryPoint: string) => build({
    entryPoints: [fileURLToPath(new URL(entryPoint, import.meta.url))],
    bundle: true,
    platform: 'browser',
    format: 'esm',
    write: false,
    metafile: true,
    logLevel: 'silent',
    plugins: [refuseNodeBuiltins(seen)],
  }).catch((err: Error) => {
    assert.fail(`the browser bundle of ${entryPoint} failed: ${err.message}\nNode built-ins seen: ${seen.join(', ') || 'none'}`)
  })
  const zk = await bundle('../../device-sdk/zk.ts')
  assert.deepEqual(seen, [])
  assert.equal(zk.errors.length, 0)
  // platform 'browser' already resolves with the `browser` condition: snarkjs and
  // ffjavascript come from their self-contained browser builds, never their Node ones.
  const inputs = Object.keys(zk.metafile.inputs)
  assert.ok(inputs.includes('node_modules/snarkjs/build/browser.esm.js'), `snarkjs's browser build is not in the bundle: ${inputs.filter(i => i.includes('snarkjs')).join(', ')}`)
  assert.ok(inputs.includes('node_modules/ffjavascript/build/browser.esm.js'))
  assert.ok(!inputs.some(i => i.startsWith('node_modules/snarkjs/src/') || i.startsWith('node_modules/web-worker/')), 'a Node build of snarkjs is in the bundle')
  const code = zk.outputFiles[0].text
  assert.ok(!code.includes('node:'), 'the bundle mentions a node: module')
  assert.ok(!/\bBuffer\.from\(/.test(code), 'the bundle calls Buffer, which browsers do not have')

  const main = await bundle('../../device-sdk/index.ts')
  assert.ok(!Object.keys(main.metafile.inputs).some(i => i.includes('snarkjs') || i.includes('poseidon')), 'the main entry pulls in the ZK side')
})
