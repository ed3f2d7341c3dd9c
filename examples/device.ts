/**
 * A device that sends a telemetry reading every second and prints each Ack.
 *
 *   npx metanode keygen --out device.key.json
 *   npx metanode enroll --key device.key.json
 *   node --import tsx examples/device.ts device.key.json [mqtt://localhost:1883]
 *
 * The hub URL may also come from MN_MQTT_URL. Stop it with Ctrl-C.
 */
import { connectDevice } from '../device-sdk/index.js'
import { readKeyFile } from '../device-sdk/node.js'

const [keyFile, url = process.env.MN_MQTT_URL ?? 'mqtt://localhost:1883'] = process.argv.slice(2)
if (!keyFile) {
  console.error('usage: examples/device.ts KEY_FILE [HUB_URL]')
  process.exit(2)
}

const device = await connectDevice({ url, keyPair: await readKeyFile(keyFile) })
console.log(`connected to ${url} as ${device.id}`)
device.on('disconnect', () => console.log('offline: readings wait in the queue until the hub is back'))
device.on('connect', () => console.log('back online'))
device.on('error', err => console.error('error:', err.message))
device.onConfig(config => console.log('new configuration:', config))

const timer = setInterval(async () => {
  const reading = { temperatureC: Math.round((20 + Math.random() * 5) * 10) / 10, uptimeS: Math.round(process.uptime()) }
  try {
    // Signed, so that a service can check the reading came from this device (examples/service.ts).
    const ack = await device.publish('StatusUpdate', reading, { sign: true })
    console.log('sent', reading, '→ ack', ack)
  } catch (err) {
    console.error('not delivered:', (err as Error).message)
  }
}, 1_000)

process.once('SIGINT', () => {
  clearInterval(timer)
  device.flush().then(() => device.close()).then(() => console.log('closed'))
})
