/**
 * The two connection phases: CONNECT rate (connect, CONNACK, DISCONNECT, closed, again)
 * and memory per idle connection. Both drive bare sockets with packets built beforehand
 * (raw-mqtt.ts), so the figures are the broker's, not the client library's.
 */
import type { Socket } from 'node:net'
import { rawConnect, rawDisconnect } from './raw-mqtt.js'
import { CpuWindow, processRssBytes } from './proc.js'
import type { BrokerProcess } from './children.js'
import { forEachLimited } from './principals.js'

export interface ConnectResult {
  /** Completed connect+disconnect cycles per second. */
  rate: number
  cycles: number
  refused: number
  /** Broker CPU per cycle, µs. */
  brokerCpuUs: number
  generatorCores: number
  machineBusy: number
}

/**
 * Each lane is one client id reconnecting in turn (waiting for the close, so no session
 * takeover is measured), with its CONNECT packets ready in `lanes[i]`. The first
 * `warmup` cycles of all lanes are run before the clock starts.
 */
export async function runConnectRate (broker: BrokerProcess, lanes: Buffer[][], warmup: number, timeLimitMs: number): Promise<ConnectResult> {
  let refused = 0
  const take = (lane: number): Buffer | undefined => lanes[lane].pop()
  const cycle = async (packet: Buffer): Promise<void> => {
    const { socket, returnCode } = await rawConnect(broker.mqttPort, packet, null)
    if (returnCode !== 0) refused += 1
    await rawDisconnect(socket)
  }

  // Warm-up: JIT, SQLite page cache and key cache, spread over the lanes.
  await forEachLimited(lanes.map((_, i) => i), lanes.length, async lane => {
    for (let i = 0; i < Math.ceil(warmup / lanes.length); i++) {
      const packet = take(lane)
      if (packet) await cycle(packet)
    }
  })
  refused = 0

  const cpu = new CpuWindow(broker.pid)
  const deadline = performance.now() + timeLimitMs
  let cycles = 0
  await Promise.all(lanes.map(async (_, lane) => {
    for (let packet = take(lane); packet && performance.now() < deadline; packet = take(lane)) {
      await cycle(packet)
      cycles += 1
    }
  }))
  const usage = cpu.read()
  return {
    rate: cycles / usage.wallSeconds,
    cycles,
    refused,
    brokerCpuUs: cycles > 0 ? usage.brokerSeconds / cycles * 1e6 : NaN,
    generatorCores: usage.generatorSeconds / usage.wallSeconds,
    machineBusy: usage.machineBusy,
  }
}

export interface IdleMemoryResult {
  connections: number
  refused: number
  /** RSS growth per connection, bytes. */
  rssPerConnection: number
  /** V8 heap growth per connection after a full GC, bytes (Node brokers only). */
  heapPerConnection: number | null
}

export interface IdleClient {
  connect: Buffer
  subscribe: Buffer
}

/**
 * Opens every client (CONNECT, then a SUBSCRIBE to its own topic, as an idle device
 * waiting for commands does), lets the broker settle, and divides the growth of the
 * broker's memory by the count. Memory is read after a full GC in the Node brokers.
 */
export async function measureIdleMemory (broker: BrokerProcess, clients: IdleClient[], concurrency = 32): Promise<IdleMemoryResult> {
  const settle = (): Promise<void> => new Promise(resolve => setTimeout(resolve, 1_000))
  await settle()
  const heap0 = await broker.memory()
  const rss0 = processRssBytes(broker.pid)
  const sockets: Socket[] = []
  let refused = 0
  try {
    await forEachLimited(clients, concurrency, async client => {
      const { socket, returnCode } = await rawConnect(broker.mqttPort, client.connect, client.subscribe)
      sockets.push(socket)
      if (returnCode !== 0) refused += 1
    })
    await settle()
    const heap1 = await broker.memory()
    const rss1 = processRssBytes(broker.pid)
    const open = sockets.length - refused
    return {
      connections: open,
      refused,
      rssPerConnection: (rss1 - rss0) / open,
      heapPerConnection: heap0 && heap1 ? (heap1.heapUsed + heap1.external - heap0.heapUsed - heap0.external) / open : null,
    }
  } finally {
    for (const socket of sockets) socket.destroy()
    await settle()
  }
}
