/**
 * The telemetry flows the generator drives, one per broker kind:
 * - hub: enrolled devices publish StatusUpdate envelopes (unsigned or COSE_Sign1) on their
 *   `up` topics; one service subscribed to `mn/v1/bridge/#` gets the bridge records.
 * - plain: devices publish raw payloads of the body's size to their own topics; one
 *   subscriber on `#` counts them (plain Aedes or Mosquitto, no auth).
 * The send time travels inside the message (the envelope body for the hub).
 */
import mqtt, { type MqttClient, type IClientOptions } from 'mqtt'
import type { Socket } from 'node:net'
import { randomBytes } from 'node:crypto'
import { encodeCbor, encodeEnvelope, signEnvelope, idBytes, decodeBridgeRecord } from '../../src/protocol/index.js'
import { connectPassword, type BenchPrincipal } from './principals.js'
import { nowMs, type TelemetryFlow } from './telemetry.js'

export type Qos = 0 | 1

/** A load generator's client on loopback: connected, Nagle off, errors ignored (the bench watches outcomes). */
export async function connectMqtt (port: number, options: IClientOptions): Promise<MqttClient> {
  const client = mqtt.connect(`mqtt://127.0.0.1:${port}`, {
    protocolVersion: 4,
    reconnectPeriod: 0,
    connectTimeout: 10_000,
    keepalive: 60,
    ...options,
  })
  await new Promise<void>((resolve, reject) => {
    client.once('connect', () => resolve())
    client.once('error', reject)
  })
  // mqtt.js leaves Nagle on; small packets would wait for ACKs (see shared baselines).
  ;(client.stream as Socket).setNoDelay?.(true)
  client.on('error', () => {})
  return client
}

async function closeAll (clients: MqttClient[]): Promise<void> {
  await Promise.all(clients.map(c => c.endAsync(true).catch(() => {})))
}

/** The StatusUpdate body: sensor-like readings padded to `bytes` of CBOR, `t` the send time. */
export function telemetryBody (t: number, pad: string): Record<string, unknown> {
  return { t, temp: 21.5, hum: 40.25, pressure: 1013.25, battery: 87, rssi: -61, pad }
}

/** The padding that makes the encoded body `bytes` long (the send time is always a float64 or a uint64: 9 bytes). */
export function bodyPadding (bytes: number): string {
  const base = encodeCbor(telemetryBody(nowMs() + 0.5, '')).length
  if (base > bytes) return ''
  let pad = 'x'.repeat(bytes - base)
  // The string's length head grows by a byte past 23 characters: trim to fit.
  while (pad.length > 0 && encodeCbor(telemetryBody(nowMs() + 0.5, pad)).length > bytes) pad = pad.slice(1)
  return pad
}

export async function hubFlow (options: { port: number, devices: BenchPrincipal[], service: BenchPrincipal, signed: boolean, qos: Qos, bodyBytes: number }): Promise<TelemetryFlow & { envelopeBytes: number }> {
  const { devices, service, qos, signed } = options
  const pad = bodyPadding(options.bodyBytes)
  const indexOf = new Map(devices.map((d, i) => [d.id, i]))
  const clients: MqttClient[] = []
  try {
    const sink = await connectMqtt(options.port, { clientId: service.id, username: service.id, password: connectPassword(service) })
    clients.push(sink)
    await sink.subscribeAsync('mn/v1/bridge/#', { qos })
    for (const device of devices) {
      clients.push(await connectMqtt(options.port, { clientId: device.id, username: device.id, password: connectPassword(device) }))
    }
  } catch (err) {
    await closeAll(clients)
    throw err
  }
  const [sink, ...deviceClients] = clients
  const topics = devices.map(d => `mn/v1/d/${d.id}/up`)
  const kids = devices.map(d => idBytes(d.id))
  // Envelope ids: a random prefix per flow and a counter, unique per sender as §4 asks,
  // without paying for 16 random bytes per message.
  const idPrefix = randomBytes(8)
  let counter = 0
  const nextId = (): Uint8Array => {
    const id = Buffer.allocUnsafe(16)
    idPrefix.copy(id, 0)
    id.writeDoubleBE(counter++, 8)
    return id
  }
  const encode = (device: number): Uint8Array => {
    const bytes = encodeEnvelope({ type: 1, src: devices[device].id, id: nextId(), body: telemetryBody(nowMs(), pad) })
    return signed ? signEnvelope(bytes, kids[device], devices[device].sign) : bytes
  }

  const flow: TelemetryFlow & { envelopeBytes: number } = {
    devices: devices.length,
    envelopeBytes: encode(0).length,
    send (device) {
      deviceClients[device].publish(topics[device], Buffer.from(encode(device)), { qos })
    },
    onDelivered: () => {},
    close: () => closeAll(clients),
  }
  sink.on('message', (_topic, payload) => {
    const record = decodeBridgeRecord(payload)
    const index = indexOf.get(record.src)
    const body = record.body as { t?: unknown } | undefined
    if (index !== undefined && typeof body?.t === 'number') flow.onDelivered(index, body.t)
  })
  return flow
}

export async function plainFlow (options: { port: number, devices: number, qos: Qos, payloadBytes: number }): Promise<TelemetryFlow> {
  const { qos, payloadBytes } = options
  const clients: MqttClient[] = []
  try {
    const sink = await connectMqtt(options.port, { clientId: 'bench-sink' })
    clients.push(sink)
    await sink.subscribeAsync('#', { qos })
    for (let i = 0; i < options.devices; i++) clients.push(await connectMqtt(options.port, { clientId: `bench-device-${i}` }))
  } catch (err) {
    await closeAll(clients)
    throw err
  }
  const [sink, ...deviceClients] = clients
  const topics = deviceClients.map((_, i) => `bench/d/bench-device-${i}/telemetry`)
  const template = Buffer.alloc(Math.max(payloadBytes, 10), 'x')

  const flow: TelemetryFlow = {
    devices: deviceClients.length,
    send (device) {
      // Send time (float64) and device index at the front, filler after: the same size as the hub's body.
      const payload = Buffer.from(template)
      payload.writeDoubleBE(nowMs(), 0)
      payload.writeUInt16BE(device, 8)
      deviceClients[device].publish(topics[device], payload, { qos })
    },
    onDelivered: () => {},
    close: () => closeAll(clients),
  }
  sink.on('message', (_topic, payload) => {
    if (payload.length >= 10) flow.onDelivered(payload.readUInt16BE(8), payload.readDoubleBE(0))
  })
  return flow
}
