/**
 * A backend service that prints every message the hub accepts from devices, and whether
 * the device's own signature verified (for signed messages).
 *
 *   npx metanode keygen --out service.key.json
 *   npx metanode enroll --key service.key.json --role service
 *   node --import tsx examples/service.ts service.key.json [mqtt://localhost:1883]
 *
 * The hub URL may also come from MN_MQTT_URL. To check signatures itself, the service
 * needs each device's public key: with MN_ADMIN_TOKEN set it fetches them from the hub's
 * HTTP API (MN_HTTP_URL, default http://localhost:8080).
 */
import { connectService } from '../device-sdk/index.js'
import { readKeyFile } from '../device-sdk/node.js'

const [keyFile, url = process.env.MN_MQTT_URL ?? 'mqtt://localhost:1883'] = process.argv.slice(2)
if (!keyFile) {
  console.error('usage: examples/service.ts KEY_FILE [HUB_URL]')
  process.exit(2)
}
const httpUrl = process.env.MN_HTTP_URL ?? 'http://localhost:8080'
const adminToken = process.env.MN_ADMIN_TOKEN

const publicKeys = new Map<string, string | null>()
async function publicKeyOf (id: string): Promise<string | null> {
  if (!adminToken) return null
  if (!publicKeys.has(id)) {
    const res = await fetch(`${httpUrl}/v1/devices/${id}`, { headers: { authorization: `Bearer ${adminToken}` } })
    publicKeys.set(id, res.ok ? (await res.json() as { publicKey: string }).publicKey : null)
  }
  return publicKeys.get(id) ?? null
}

const service = await connectService({ url, keyPair: await readKeyFile(keyFile) })
console.log(`listening on ${url} as ${service.id}`)
process.once('SIGINT', () => { service.close().catch(() => {}) })

for await (const record of service.records()) {
  const publicKey = record.signed ? await publicKeyOf(record.src) : null
  const signature = !record.signed ? 'unsigned' : publicKey ? (record.verify(publicKey) ? 'verified' : 'INVALID') : 'signed (key unknown)'
  console.log(new Date(record.receivedAt).toISOString(), record.typeName, 'from', record.src, `[${signature}]`, record.body)
}
console.log('closed')
