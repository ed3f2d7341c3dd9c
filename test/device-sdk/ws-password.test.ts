import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createConnectPatcher, patchSocketPassword, PASSWORD_BYTES, PASSWORD_PLACEHOLDER } from '../../device-sdk/ws-password.js'

/** An MQTT 3.1.1 CONNECT with username and password, written the way mqtt-packet does. */
function connectPacket (clientId: string, password: Uint8Array): Uint8Array {
  const text = (s: string): number[] => {
    const bytes = [...new TextEncoder().encode(s)]
    return [bytes.length >> 8, bytes.length & 0xff, ...bytes]
  }
  const body = [
    ...text('MQTT'), 4, 0b1100_0010, 0, 30,
    ...text(clientId), ...text(clientId),
    password.length >> 8, password.length & 0xff, ...password,
  ]
  const length: number[] = []
  let n = body.length
  do {
    let byte = n % 128
    n = Math.floor(n / 128)
    if (n > 0) byte |= 0x80
    length.push(byte)
  } while (n > 0)
  return Uint8Array.from([0x10, ...length, ...body])
}

const placeholder = new TextEncoder().encode(PASSWORD_PLACEHOLDER)
const password = Uint8Array.from({ length: PASSWORD_BYTES }, (_, i) => (i * 37 + 11) & 0xff)
const id = 'ab'.repeat(16)

function split (bytes: Uint8Array, sizes: number[]): Uint8Array[] {
  const chunks: Uint8Array[] = []
  let at = 0
  for (let i = 0; at < bytes.length; i++) {
    const size = sizes[i % sizes.length]
    chunks.push(bytes.subarray(at, at + size))
    at += size
  }
  return chunks
}

function concat (chunks: Uint8Array[]): Uint8Array {
  return Uint8Array.from(chunks.flatMap(c => [...c]))
}

test('the placeholder is 88 bytes in UTF-8, so every length in the packet is right', () => {
  assert.equal(placeholder.length, PASSWORD_BYTES)
})

test('swaps the placeholder for the password however the CONNECT is chunked', () => {
  const sent = connectPacket(id, placeholder)
  const expected = connectPacket(id, password)
  const following = Uint8Array.from([0x82, 0x05, 0, 1, 0, 0, 0]) // a SUBSCRIBE after it: untouched
  for (const sizes of [[sent.length], [1], [1, 2, 3, 5, 8], [7], [sent.length - 88, 88], [sent.length - 40, 100]]) {
    const patch = createConnectPatcher(password)
    const out = split(sent, sizes).map(chunk => patch(chunk))
    assert.deepEqual(concat(out), expected, `chunk sizes ${sizes.join(',')}`)
    assert.equal(patch(following), following, 'later packets pass through as they are')
  }
})

test('a long client id that needs a two-byte remaining length is handled', () => {
  const longId = 'x'.repeat(200)
  const patch = createConnectPatcher(password)
  assert.deepEqual(concat(split(connectPacket(longId, placeholder), [3]).map(patch)), connectPacket(longId, password))
})

test('the input chunks are never modified in place', () => {
  const sent = connectPacket(id, placeholder)
  const copy = Uint8Array.from(sent)
  createConnectPatcher(password)(sent)
  assert.deepEqual(sent, copy)
})

test('refuses to patch anything but a CONNECT ending in the placeholder', () => {
  assert.throws(() => createConnectPatcher(password)(Uint8Array.from([0x30, 0])), /not a CONNECT/)
  const other = connectPacket(id, Uint8Array.from({ length: 88 }, () => 7))
  assert.throws(() => createConnectPatcher(password)(other), /placeholder/)
  assert.throws(() => createConnectPatcher(new Uint8Array(10)), /88 bytes/)
})

test('patchSocketPassword wraps send and keeps its other arguments', () => {
  const sent: unknown[][] = []
  const socket = { send (data: unknown, ...rest: unknown[]) { sent.push([data, ...rest]) } }
  patchSocketPassword(socket, password)
  const packet = connectPacket(id, placeholder)
  const callback = (): void => {}
  socket.send(packet.buffer, callback)
  assert.deepEqual(sent[0][0], connectPacket(id, password))
  assert.equal(sent[0][1], callback)
})
