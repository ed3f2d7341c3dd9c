/**
 * MQTT over TLS, when a certificate and key are configured. The certificate is made for
 * the test with openssl (Debian's, present wherever git and npm are).
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { startTestHub, enrollPrincipal, principalOptions, connackCode, tempDir } from '../helpers/hub.js'

test('an enrolled device connects over TLS with the signed password', async t => {
  const dir = tempDir(t)
  const certFile = join(dir, 'cert.pem')
  const keyFile = join(dir, 'key.pem')
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
    '-keyout', keyFile, '-out', certFile, '-days', '1', '-subj', '/CN=localhost', '-addext', 'subjectAltName=IP:127.0.0.1'], { stdio: 'ignore' })
  const hub = await startTestHub(t, { tls: { certFile, keyFile, port: 0 } })
  assert.ok(hub.tlsPort)
  const device = await enrollPrincipal(hub)
  const code = await connackCode(t, `mqtts://127.0.0.1:${hub.tlsPort}`, principalOptions(device, { ca: readFileSync(certFile), rejectUnauthorized: true }))
  assert.equal(code, 0)
})
