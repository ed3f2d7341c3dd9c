/**
 * The reference broker: Aedes 1.2 as it comes, no hooks, no auth, in-memory persistence,
 * TCP_NODELAY on every accepted socket like the hub (Nagle halves small-packet throughput).
 */
import { createServer } from 'node:net'
import type { AddressInfo } from 'node:net'
import { Aedes } from 'aedes'
import { serveControl } from './control.js'

const broker = await Aedes.createBroker()
const server = createServer(socket => {
  socket.setNoDelay(true)
  broker.handle(socket)
})
await new Promise<void>((resolve, reject) => {
  server.once('error', reject)
  server.listen(0, '127.0.0.1', () => resolve())
})

serveControl({ mqttPort: (server.address() as AddressInfo).port }, async () => {
  await new Promise<void>(resolve => server.close(() => resolve()))
  await new Promise<void>(resolve => broker.close(() => resolve()))
})
