/**
 * A TCP proxy between an SDK client and the hub, so that tests can cut the connection,
 * keep the device offline, or lose what the hub sends (Acks) without touching the hub.
 */
import { createServer, connect, type Server, type Socket } from 'node:net'
import type { AddressInfo } from 'node:net'
import type { TestContext } from 'node:test'

export interface TestProxy {
  readonly url: string
  /** Connections accepted so far (each device (re)connect is one). */
  readonly accepted: number
  /** Cuts every open connection (the device sees its connection drop). */
  cut (): void
  /** While down, new connections are accepted and closed at once: the device stays offline. */
  setDown (down: boolean): void
  /** While deaf, bytes from the hub to the device are dropped: Acks and PUBACKs are lost. */
  setDeaf (deaf: boolean): void
  /** Resolves when the proxy has accepted `count` connections in total. */
  waitAccepted (count: number): Promise<void>
}

export async function startProxy (t: Pick<TestContext, 'after'>, targetPort: number): Promise<TestProxy> {
  const sockets = new Set<Socket>()
  let down = false
  let deaf = false
  let accepted = 0
  const waiters: Array<{ count: number, wake: () => void }> = []
  const server: Server = createServer(client => {
    accepted++
    for (const waiter of waiters.filter(w => accepted >= w.count)) {
      waiters.splice(waiters.indexOf(waiter), 1)
      waiter.wake()
    }
    if (down) {
      client.destroy()
      return
    }
    const upstream = connect(targetPort, '127.0.0.1')
    sockets.add(client)
    sockets.add(upstream)
    client.on('data', chunk => upstream.write(chunk))
    upstream.on('data', chunk => { if (!deaf) client.write(chunk) })
    const close = (): void => {
      client.destroy()
      upstream.destroy()
      sockets.delete(client)
      sockets.delete(upstream)
    }
    client.on('close', close)
    upstream.on('close', close)
    client.on('error', close)
    upstream.on('error', close)
  })
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  t.after(() => new Promise<void>(resolve => {
    for (const socket of sockets) socket.destroy()
    server.close(() => resolve())
  }))
  const port = (server.address() as AddressInfo).port
  return {
    url: `mqtt://127.0.0.1:${port}`,
    get accepted () { return accepted },
    cut () {
      for (const socket of sockets) socket.destroy()
    },
    setDown (value) { down = value },
    setDeaf (value) { deaf = value },
    waitAccepted (count) {
      if (accepted >= count) return Promise.resolve()
      return new Promise(resolve => waiters.push({ count, wake: resolve }))
    },
  }
}
