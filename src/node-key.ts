/**
 * The hub node's own ed25519 identity: the `src` of its Acks, key 10 of its bridge
 * records, and the key that signs Acks when configured. Generated on first start and kept
 * in the data directory, readable by its owner only.
 */
import { createPrivateKey, generateKeyPairSync, sign, type KeyObject } from 'node:crypto'
import { existsSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { principalIdFromPublicKey, type Signer } from './protocol/index.js'

export interface NodeKey {
  id: string
  publicKey: Uint8Array
  sign: Signer
}

const FILE_NAME = 'node-key.json'
// DER prefix of an ed25519 PKCS#8 private key (RFC 8410): the 32-byte seed follows.
const ED25519_PKCS8_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex')

export function loadOrCreateNodeKey (dataDir: string): NodeKey {
  const file = join(dataDir, FILE_NAME)
  let privateKey: KeyObject
  if (existsSync(file)) {
    const { secretKey } = JSON.parse(readFileSync(file, 'utf8')) as { secretKey: string }
    privateKey = createPrivateKey({ key: Buffer.concat([ED25519_PKCS8_PREFIX, Buffer.from(secretKey, 'hex')]), format: 'der', type: 'pkcs8' })
  } else {
    privateKey = generateKeyPairSync('ed25519').privateKey
    const jwk = privateKey.export({ format: 'jwk' })
    const secretKey = Buffer.from(jwk.d as string, 'base64url').toString('hex')
    const publicKey = Buffer.from(jwk.x as string, 'base64url').toString('hex')
    writeFileSync(file, JSON.stringify({ secretKey, publicKey }) + '\n', { mode: 0o600, flag: 'wx' })
  }
  const jwk = privateKey.export({ format: 'jwk' })
  const publicKey = new Uint8Array(Buffer.from(jwk.x as string, 'base64url'))
  return {
    id: principalIdFromPublicKey(publicKey),
    publicKey,
    sign: (message: Uint8Array) => new Uint8Array(sign(null, message, privateKey)),
  }
}
