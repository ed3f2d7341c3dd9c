/**
 * Which ed25519 verifier the hub should use: node:crypto (OpenSSL) with a cached KeyObject,
 * synchronously and through libuv's thread pool (the callback form the hub uses), against
 * @noble/ed25519 (the SDK's, pure JS). Prints verifications per second and the ratios.
 *   npm run bench:crypto            (BENCH_VERIFY_COUNT to change the count)
 */
import { generateKeyPairSync, sign, verify, createPublicKey } from 'node:crypto'
import * as ed from '@noble/ed25519'
import { sha512 } from '@noble/hashes/sha2.js'

ed.hashes.sha512 = sha512
const COUNT = Number(process.env.BENCH_VERIFY_COUNT ?? 4000)

const { privateKey, publicKey } = generateKeyPairSync('ed25519')
const raw = new Uint8Array(Buffer.from(publicKey.export({ format: 'jwk' }).x as string, 'base64url'))
const messages = Array.from({ length: COUNT }, (_, i) => Buffer.from(`telemetry envelope number ${i} `.repeat(4)))
const signatures = messages.map(m => sign(null, m, privateKey))

function time (label: string, run: () => void | Promise<void>): Promise<number> {
  return (async () => {
    const start = process.hrtime.bigint()
    await run()
    const seconds = Number(process.hrtime.bigint() - start) / 1e9
    const rate = COUNT / seconds
    console.log(`${label.padEnd(48)} ${Math.round(rate).toLocaleString('en').padStart(9)} verifies/s`)
    return rate
  })()
}

const cachedSync = await time('node:crypto, cached KeyObject, sync', () => {
  for (let i = 0; i < COUNT; i++) verify(null, messages[i], publicKey, signatures[i])
})
await time('node:crypto, KeyObject made per call, sync', () => {
  const spki = publicKey.export({ format: 'der', type: 'spki' })
  for (let i = 0; i < COUNT; i++) verify(null, messages[i], createPublicKey({ key: spki, format: 'der', type: 'spki' }), signatures[i])
})
const pooled = await time('node:crypto, cached KeyObject, thread pool', () =>
  Promise.all(messages.map((m, i) => new Promise<void>((resolve, reject) => {
    verify(null, m, publicKey, signatures[i], (err, ok) => (err || !ok ? reject(err ?? new Error('bad')) : resolve()))
  }))).then(() => undefined))
const noble = await time('@noble/ed25519 verify (pure JS)', () => {
  for (let i = 0; i < COUNT; i++) ed.verify(signatures[i], messages[i], raw)
})
console.log(`\nnode:crypto sync / noble: ${(cachedSync / noble).toFixed(1)}×   thread pool / sync: ${(pooled / cachedSync).toFixed(2)}× (the pool also keeps the event loop free)`)
