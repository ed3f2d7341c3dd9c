/**
 * The worked examples of docs/protocol.md, built from fixed keys, ids and times with the
 * protocol module. vectors.test.ts compares each with the doc byte for byte; running this
 * file prints them in the doc's format:
 *   node --import tsx test/protocol/vectors.ts
 */
import {
  buildConnectPassword, connectSigningInput, encodeAck, encodeBatch, encodeBridgeRecord, encodeEnvelope, idBytes,
  MessageType, PROTECTED_EDDSA, signEnvelope, sigStructure, toHex, httpSigningInput, bodyDigest, signHttpRequest,
} from '../../src/protocol/index.js'
import { DEVICE_ID, DEVICE_PUBLIC, DEVICE_SECRET, HUB_ID, HUB_PUBLIC, HUB_SECRET, T0, nobleSigner, seq16 } from './helpers.js'

export interface Vector {
  label: string
  kind: 'hex' | 'text'
  value: string
}

export function buildVectors (): Vector[] {
  const deviceSign = nobleSigner(DEVICE_SECRET)
  const hubSign = nobleSigner(HUB_SECRET)
  const out: Vector[] = []
  const hex = (label: string, bytes: Uint8Array): void => { out.push({ label, kind: 'hex', value: toHex(bytes) }) }
  const text = (label: string, value: string): void => { out.push({ label, kind: 'text', value }) }

  hex('device-secret-key', DEVICE_SECRET)
  hex('device-public-key', DEVICE_PUBLIC)
  text('device-id', DEVICE_ID)
  hex('hub-secret-key', HUB_SECRET)
  hex('hub-public-key', HUB_PUBLIC)
  text('hub-id', HUB_ID)

  const nonce = seq16(0x00)
  hex('connect-signing-input', connectSigningInput(DEVICE_ID, T0, nonce))
  hex('connect-password', buildConnectPassword(DEVICE_ID, deviceSign, { ts: T0, nonce }))

  const status = encodeEnvelope({
    type: MessageType.StatusUpdate, src: DEVICE_ID, id: seq16(0xa0), ts: T0, body: { temp: 21.5, rssi: -67 }, ack: true,
  })
  hex('status-update', status)

  const alert = encodeEnvelope({
    type: MessageType.SecurityAlert, src: DEVICE_ID, id: seq16(0xb0), ts: T0 + 1000, prio: 0,
    body: { kind: 'tamper', detail: 'enclosure opened' }, ack: true,
  })
  hex('security-alert-payload', alert)
  hex('security-alert-sig-structure', sigStructure(PROTECTED_EDDSA, alert))
  hex('security-alert-signed', signEnvelope(alert, idBytes(DEVICE_ID), deviceSign))

  const heartbeat = encodeEnvelope({ type: MessageType.Heartbeat, src: DEVICE_ID, id: seq16(0xc0), ts: T0 + 2000, body: { uptime: 3600 } })
  hex('batch', encodeBatch([heartbeat, signEnvelope(alert, idBytes(DEVICE_ID), deviceSign)]))

  hex('compressed-status-update', encodeEnvelope({
    type: MessageType.StatusUpdate, src: DEVICE_ID, id: seq16(0xd0), ts: T0 + 3000,
    body: { log: 'door opened; door closed; '.repeat(4) }, compress: true,
  }))

  hex('bridge-record', encodeBridgeRecord({
    type: MessageType.StatusUpdate, src: DEVICE_ID, receivedAt: T0 + 250, body: { temp: 21.5, rssi: -67 }, hubId: HUB_ID, signed: false, raw: status,
  }))

  hex('ack-ok', encodeAck({ re: seq16(0xa0), hubId: HUB_ID, dst: DEVICE_ID, id: seq16(0xe0), ts: T0 + 300 }))
  hex('ack-rejected', encodeAck({ re: seq16(0xb0), hubId: HUB_ID, dst: DEVICE_ID, reason: 'skew', id: seq16(0xf0), ts: T0 + 400 }))
  hex('ack-signed', encodeAck({ re: seq16(0xa0), hubId: HUB_ID, dst: DEVICE_ID, id: seq16(0xe0), ts: T0 + 300, sign: hubSign }))

  const httpBody = '{"desired":{"led":"on"}}'
  const httpTarget = `/v1/devices/${DEVICE_ID}/state`
  hex('http-signing-input', httpSigningInput('PATCH', httpTarget, T0, seq16(0x10), bodyDigest(httpBody)))
  const httpHeaders = signHttpRequest(DEVICE_ID, deviceSign, { method: 'PATCH', target: httpTarget, body: httpBody, ts: T0, nonce: seq16(0x10) })
  text('http-authorization', httpHeaders.authorization)
  text('http-content-digest', httpHeaders['content-digest'])
  return out
}

/** The doc's format: a fenced block whose first line names the vector, hex wrapped at 64 digits. */
export function formatVector (vector: Vector): string {
  const lines = vector.kind === 'hex' ? vector.value.match(/.{1,64}/g) ?? [''] : [vector.value]
  return ['```' + vector.kind, `# ${vector.label}`, ...lines, '```'].join('\n')
}

/** Every fenced block of a Markdown text that names a vector, by label. */
export function readVectors (markdown: string): Map<string, Vector> {
  const found = new Map<string, Vector>()
  for (const match of markdown.matchAll(/^```(hex|text)\n# ([a-z0-9-]+)\n([\s\S]*?)^```$/gm)) {
    const [, kind, label, body] = match
    if (found.has(label)) throw new Error(`vector ${label} appears twice`)
    const value = kind === 'hex' ? body.replace(/\s+/g, '') : body.trim()
    found.set(label, { label, kind: kind as Vector['kind'], value })
  }
  return found
}

if (import.meta.url === `file://${process.argv[1]}`) {
  for (const vector of buildVectors()) console.log(`${formatVector(vector)}\n`)
}
