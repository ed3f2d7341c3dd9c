import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createPrivateKey, sign as nodeSign } from 'node:crypto'
import { mkdtempSync, rmSync, statSync, writeFileSync, readFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import {
  generateKeyPair, keyPairFromSecretKey, exportKeyPair, importKeyPair, loadOrCreateKeyPair, MemoryKeyStore,
  sign, verify, publicKeyBytes, KeyError,
} from '../../device-sdk/index.js'
import { FileKeyStore, readKeyFile } from '../../device-sdk/node.js'
import { principalIdFromPublicKey, toHex } from '../../src/protocol/index.js'

// RFC 8032 §7.1, TEST 1.
const RFC_SECRET = '9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60'
const RFC_PUBLIC = 'd75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a'
const RFC_SIGNATURE = 'e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b'

test('derives the RFC 8032 public key and signature', () => {
  const keyPair = keyPairFromSecretKey(RFC_SECRET)
  assert.equal(toHex(keyPair.publicKey), RFC_PUBLIC)
  assert.equal(keyPair.id, principalIdFromPublicKey(keyPair.publicKey))
  assert.match(keyPair.id, /^[0-9a-f]{32}$/)
  assert.equal(toHex(sign(keyPair, new Uint8Array(0))), RFC_SIGNATURE)
})

test('signatures are byte-identical to node:crypto and verify', () => {
  const keyPair = generateKeyPair()
  const message = new TextEncoder().encode('mn1/connect')
  const der = Buffer.concat([Buffer.from('302e020100300506032b657004220420', 'hex'), keyPair.secretKey])
  const nodeSignature = nodeSign(null, message, createPrivateKey({ key: der, format: 'der', type: 'pkcs8' }))
  const signature = sign(keyPair, message)
  assert.deepEqual(Buffer.from(signature), nodeSignature)
  assert.equal(verify(signature, message, keyPair.publicKey), true)
  assert.equal(verify(signature, new Uint8Array([1]), keyPair.publicKey), false)
  assert.equal(verify(signature, message, generateKeyPair().publicKey), false)
})

test('verify says false, never throws, on malformed input', () => {
  const keyPair = generateKeyPair()
  assert.equal(verify(new Uint8Array(10), new Uint8Array(1), keyPair.publicKey), false)
  assert.equal(verify(new Uint8Array(64), new Uint8Array(1), new Uint8Array(31)), false)
  assert.equal(verify(new Uint8Array(64).fill(255), new Uint8Array(1), new Uint8Array(32).fill(255)), false)
})

test('generated key pairs are distinct and keep a private copy of the secret', () => {
  const a = generateKeyPair()
  const b = generateKeyPair()
  assert.notEqual(a.id, b.id)
  const secret = Uint8Array.from(a.secretKey)
  const keyPair = keyPairFromSecretKey(secret)
  secret.fill(0)
  assert.equal(keyPair.id, a.id)
  assert.ok(Object.isFrozen(keyPair))
})

test('export and import round-trip through JSON, hex in either case', () => {
  const keyPair = generateKeyPair()
  const exported = exportKeyPair(keyPair)
  assert.deepEqual(Object.keys(exported).sort(), ['id', 'publicKey', 'secretKey'])
  assert.match(exported.secretKey, /^[0-9a-f]{64}$/)
  const back = importKeyPair(JSON.stringify(exported))
  assert.deepEqual(back, keyPair)
  assert.deepEqual(importKeyPair({ secretKey: exported.secretKey.toUpperCase() }), keyPair)
  assert.deepEqual(importKeyPair({ ...exported, publicKey: exported.publicKey.toUpperCase() }), keyPair)
})

test('import refuses malformed and inconsistent key pairs, saying why', () => {
  const exported = exportKeyPair(generateKeyPair())
  const other = exportKeyPair(generateKeyPair())
  assert.throws(() => importKeyPair('{not json'), KeyError)
  assert.throws(() => importKeyPair('null'), KeyError)
  assert.throws(() => importKeyPair({}), /secretKey/)
  assert.throws(() => importKeyPair({ secretKey: 'abc' }), /64 hex characters/)
  assert.throws(() => importKeyPair({ secretKey: 'zz'.repeat(32) }), KeyError)
  assert.throws(() => importKeyPair({ ...exported, publicKey: other.publicKey }), /does not belong/)
  assert.throws(() => importKeyPair({ ...exported, id: other.id }), /does not match/)
  assert.throws(() => keyPairFromSecretKey(new Uint8Array(31)), /length=31/)
  assert.throws(() => publicKeyBytes('00'), KeyError)
  assert.equal(publicKeyBytes(exported.publicKey).length, 32)
})

test('MemoryKeyStore and loadOrCreateKeyPair: generated once, then loaded', async () => {
  const store = new MemoryKeyStore()
  assert.equal(await store.load(), null)
  const first = await loadOrCreateKeyPair(store)
  const second = await loadOrCreateKeyPair(store)
  assert.equal(second, first)
})

test('FileKeyStore writes mode 0600 JSON that importKeyPair and readKeyFile read back', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'mn-sdk-keys-'))
  t.after(() => rmSync(dir, { recursive: true, force: true }))
  const path = join(dir, 'nested', 'device.key.json')
  const store = new FileKeyStore(path)
  assert.equal(await store.load(), null)
  const keyPair = await loadOrCreateKeyPair(store)
  assert.equal(statSync(path).mode & 0o777, 0o600)
  assert.deepEqual(importKeyPair(readFileSync(path, 'utf8')), keyPair)
  assert.deepEqual(await readKeyFile(path), keyPair)
  assert.deepEqual(await loadOrCreateKeyPair(store), keyPair)

  // Overwriting keeps the mode, and leaves no temporary file behind.
  await store.save(generateKeyPair())
  assert.equal(statSync(path).mode & 0o777, 0o600)
  assert.deepEqual((await import('node:fs')).readdirSync(join(dir, 'nested')), ['device.key.json'])

  writeFileSync(path, '{"secretKey": "nope"}')
  await assert.rejects(store.load(), (err: Error) => err instanceof KeyError && err.message.includes(path))
  await assert.rejects(readKeyFile(join(dir, 'missing.json')), /no such key file/)
})

test('reads the key file format of `metanode keygen`', () => {
  const keyPair = keyPairFromSecretKey(RFC_SECRET)
  const file = JSON.stringify({ secretKey: RFC_SECRET, publicKey: RFC_PUBLIC, id: keyPair.id })
  assert.equal(importKeyPair(file).id, keyPair.id)
})
