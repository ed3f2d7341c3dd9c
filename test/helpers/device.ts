/**
 * A raw protocol-level device for tests: real mqtt.js, envelopes built by hand with the
 * protocol module, so each test controls every byte the hub sees.
 */
import type { TestContext } from 'node:test'
import type { MqttClient } from 'mqtt'
import type { Hub } from '../../src/hub.js'
import {
  encodeEnvelope, signEnvelope, idBytes, parsePayload, decodeBridgeRecord, type EnvelopeInput, type BridgeRecord,
} from '../../src/protocol/index.js'
import { enrollPrincipal, connectClient, mqttUrl, principalOptions, collect, type TestPrincipal } from './hub.js'

type After = Pick<TestContext, 'after'>

export interface TestDevice {
  principal: TestPrincipal
  client: MqttClient
  /** Ack bodies received on the device's down topic, in order. */
  acks: ReturnType<typeof collect>
  up (payload: Uint8Array, qos?: 0 | 1 | 2): Promise<void>
  envelope (input: Partial<EnvelopeInput>): Uint8Array
  signed (input: Partial<EnvelopeInput>, signer?: TestPrincipal['sign'], kid?: Uint8Array): Uint8Array
  ackBodies (count: number): Promise<Array<Record<string, unknown>>>
}

export async function connectTestDevice (t: After, hub: Hub, principal?: TestPrincipal): Promise<TestDevice> {
  const device = principal ?? await enrollPrincipal(hub)
  const client = await connectClient(t, mqttUrl(hub), principalOptions(device))
  const acks = collect(client)
  await client.subscribeAsync(`mn/v1/d/${device.id}/down`, { qos: 1 })
  const testDevice: TestDevice = {
    principal: device,
    client,
    acks,
    async up (payload, qos = 1) {
      await client.publishAsync(`mn/v1/d/${device.id}/up`, Buffer.from(payload), { qos })
    },
    envelope (input) {
      return encodeEnvelope({ type: 1, src: device.id, body: { temp: 21.5 }, ...input })
    },
    signed (input, signer = device.sign, kid = idBytes(device.id)) {
      return signEnvelope(testDevice.envelope(input), kid, signer)
    },
    async ackBodies (count) {
      const messages = await acks.waitFor(count)
      return messages.slice(0, count).map(m => {
        const parsed = parsePayload(m.payload, { payloadBytesMax: 1 << 20, direction: 'down' })
        if (!parsed.ok || !parsed.items[0].envelope) throw new Error('undecodable down message')
        return parsed.items[0].envelope.body as Record<string, unknown>
      })
    },
  }
  return testDevice
}

export async function connectTestService (t: After, hub: Hub, filter = 'mn/v1/bridge/#'): Promise<{ principal: TestPrincipal, client: MqttClient, records: ReturnType<typeof collect>, decoded (count: number): Promise<BridgeRecord[]> }> {
  const principal = await enrollPrincipal(hub, 'service')
  const client = await connectClient(t, mqttUrl(hub), principalOptions(principal))
  const records = collect(client)
  await client.subscribeAsync(filter, { qos: 1 })
  return {
    principal,
    client,
    records,
    async decoded (count) {
      const messages = await records.waitFor(count)
      return messages.slice(0, count).map(m => decodeBridgeRecord(m.payload))
    },
  }
}

/** Reads one counter of the hub's Prometheus text. */
export async function metricValue (hub: Hub, name: string, labels = ''): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${hub.httpPort}/metrics`)).text()
  const line = text.split('\n').find(l => l.startsWith(`${name}${labels ? `{${labels}}` : ''} `))
  return line ? Number(line.split(' ').at(-1)) : 0
}
