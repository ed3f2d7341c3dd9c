/**
 * Helpers for the SDK's integration tests: SDK clients for principals enrolled on a real
 * test hub, each closed in t.after, and a way to await the SDK's events.
 */
import { createServer } from 'node:net'
import type { AddressInfo } from 'node:net'
import type { TestContext } from 'node:test'
import type { Hub } from '../../src/hub.js'
import {
  DeviceClient, ServiceClient, keyPairFromSecretKey,
  type DeviceClientOptions, type KeyPair, type ServiceClientOptions,
} from '../../device-sdk/index.js'
import { enrollPrincipal, mqttUrl } from '../helpers/hub.js'

type After = Pick<TestContext, 'after'>

/** Fast reconnects, so tests that cut connections do not wait on production backoff. */
export const FAST_RECONNECT = { initialDelayMs: 10, maxDelayMs: 200, jitter: 1 }

export async function enrolledKeyPair (hub: Hub, role: 'device' | 'service' = 'device'): Promise<KeyPair> {
  const principal = await enrollPrincipal(hub, role)
  return keyPairFromSecretKey(principal.secretKey)
}

/** A connected device client for a newly enrolled principal (or the given key pair). */
export async function openDevice (t: After, hub: Hub, options: Partial<DeviceClientOptions> = {}): Promise<DeviceClient> {
  const keyPair = options.keyPair ?? await enrolledKeyPair(hub)
  const device = new DeviceClient({ url: mqttUrl(hub), reconnect: FAST_RECONNECT, connectTimeoutMs: 10_000, ...options, keyPair })
  t.after(() => device.close())
  return device.connect()
}

export async function openService (t: After, hub: Hub, options: Partial<ServiceClientOptions> = {}): Promise<ServiceClient> {
  const keyPair = options.keyPair ?? await enrolledKeyPair(hub, 'service')
  const service = new ServiceClient({ url: mqttUrl(hub), reconnect: FAST_RECONNECT, connectTimeoutMs: 10_000, ...options, keyPair })
  t.after(() => service.close())
  return service.connect()
}

/** Resolves with the arguments of the next `event` the client emits. */
export function nextEvent<A extends unknown[]> (client: { once (event: any, listener: (...args: any[]) => void): () => void }, event: string): Promise<A> {
  return new Promise(resolve => { client.once(event, (...args: unknown[]) => resolve(args as A)) })
}

/** A localhost port with nothing listening on it (connections are refused). */
export async function deadPort (): Promise<number> {
  const server = createServer()
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as AddressInfo).port
  await new Promise<void>(resolve => server.close(() => resolve()))
  return port
}
