/**
 * Micro-benchmark of the protocol work the hub does for every device message
 * (broker/up-pipeline.ts): parsePayload, checkEnvelope, the replay guard, validateBody and
 * encodeBridgeRecord. Not a test file (node --test does not pick it up):
 *
 *   node --import tsx test/protocol/hot-path.bench.ts
 *
 * It re-runs itself with --expose-gc and a large young generation when started without
 * them, so that "bytes/op" (V8 heap plus ArrayBuffer memory allocated per operation, read
 * around a loop during which no GC ran) is exact. ns/op: the median and the best of nine
 * rounds (on a shared machine the best round is the steadier figure).
 *
 * HOT_PATH_PROTOCOL=/path/to/protocol/index.ts measures another copy of the module (an
 * older checkout, say) with the same fixtures, for before/after figures on one machine.
 * HOT_PATH_ONLY=regex runs only the cases whose name matches.
 */
import { spawnSync } from 'node:child_process'
import { PerformanceObserver } from 'node:perf_hooks'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { DEVICE_ID, DEVICE_SECRET, HUB_ID, MAX, SKEW_MS, nobleSigner } from './helpers.js'

type Protocol = typeof import('../../src/protocol/index.js')

const gc = (globalThis as { gc?: () => void }).gc
if (gc === undefined) {
  // Re-run with the flags the memory figures need.
  const flags = ['--expose-gc', '--min-semi-space-size=64', '--max-semi-space-size=64']
  const run = spawnSync(process.execPath, [...flags, ...process.execArgv, fileURLToPath(import.meta.url), ...process.argv.slice(2)], { stdio: 'inherit' })
  process.exit(run.status ?? 1)
}
const collect = gc as () => void

const modulePath = process.env.HOT_PATH_PROTOCOL
const p: Protocol = modulePath
  ? await import(pathToFileURL(modulePath).href) as Protocol
  : await import('../../src/protocol/index.js')
const only = process.env.HOT_PATH_ONLY ? new RegExp(process.env.HOT_PATH_ONLY) : null

// Fixtures: the StatusUpdate of `npm run bench` (bench/lib/flows.ts), a 100-byte body.
const T = 1767225600000
function telemetryBody (t: number, pad: string): Record<string, unknown> {
  return { t, temp: 21.5, hum: 40.25, pressure: 1013.25, battery: 87, rssi: -61, pad }
}
let pad = 'x'.repeat(100)
while (pad.length > 0 && p.encodeCbor(telemetryBody(T + 0.5, pad)).length > 100) pad = pad.slice(1)
const idOf = (n: number): Uint8Array => {
  const id = new Uint8Array(16)
  id.fill(0x5a, 0, 8)
  new DataView(id.buffer).setFloat64(8, n)
  return id
}
const envelope = (n: number): Uint8Array => p.encodeEnvelope({ type: p.MessageType.StatusUpdate, src: DEVICE_ID, id: idOf(n), ts: T, body: telemetryBody(T + n + 0.5, pad) })
const unsigned = envelope(1)
const signed = p.signEnvelope(unsigned, p.idBytes(DEVICE_ID), nobleSigner(DEVICE_SECRET))
const batch16 = p.encodeBatch(Array.from({ length: 16 }, (_, i) => envelope(i)))
const upOptions = { payloadBytesMax: MAX, direction: 'up' as const }

const parsedOne = p.parsePayload(unsigned, upOptions)
if (!parsedOne.ok || parsedOne.items[0].envelope === undefined) throw new Error('fixture does not parse')
const item = parsedOne.items[0]
const env = item.envelope as NonNullable<typeof item.envelope>
// bodyBytes: the body's bytes as received, when this version of the module offers them.
const recordInput = {
  type: env.type, src: DEVICE_ID, receivedAt: T + 5, body: env.body, hubId: HUB_ID, signed: false, raw: item.raw,
  bodyBytes: (item as { bodyBytes?: Uint8Array }).bodyBytes,
}

interface Figures { name: string, nsPerOp: number, bestNsPerOp: number, bytesPerOp: number | null }
const results: Figures[] = []

// Start times of the GCs seen (performance.now() timeline); entries arrive asynchronously.
const gcStarts: number[] = []
new PerformanceObserver((list) => { for (const entry of list.getEntries()) gcStarts.push(entry.startTime) }).observe({ entryTypes: ['gc'] })
const settle = (): Promise<void> => new Promise((resolve) => setTimeout(resolve, 20))
const allocated = (): number => {
  const usage = process.memoryUsage()
  return usage.heapUsed + usage.arrayBuffers
}
let sink: unknown

/** Times fn (median ns/op over rounds), then counts the bytes it allocates per call. */
async function measure (name: string, fn: (i: number) => unknown, options: { iterations?: number, allocIterations?: number } = {}): Promise<void> {
  if (only && !only.test(name)) return
  const iterations = options.iterations ?? 100_000
  for (let i = 0; i < Math.min(iterations, 20_000); i++) sink = fn(i)
  const rounds: number[] = []
  for (let round = 0; round < 9; round++) {
    const started = process.hrtime.bigint()
    for (let i = 0; i < iterations; i++) sink = fn(i)
    rounds.push(Number(process.hrtime.bigint() - started) / iterations)
  }
  rounds.sort((a, b) => a - b)
  // Bytes per op: a GC inside the loop would hide allocations, so retry with fewer calls.
  let bytesPerOp: number | null = null
  for (let count = options.allocIterations ?? 2000; count >= 50 && bytesPerOp === null; count = Math.floor(count / 4)) {
    collect()
    collect()
    await settle()
    const before = allocated()
    const started = performance.now()
    for (let i = 0; i < count; i++) sink = fn(i)
    const ended = performance.now()
    const after = allocated()
    await settle()
    if (!gcStarts.some((t) => t >= started && t <= ended)) bytesPerOp = Math.max(0, (after - before) / count)
  }
  const figures = { name, nsPerOp: rounds[rounds.length >> 1], bestNsPerOp: rounds[0], bytesPerOp }
  results.push(figures)
  console.error(`${name}: ${figures.nsPerOp.toFixed(0)} ns/op (best ${figures.bestNsPerOp.toFixed(0)}), ${bytesPerOp === null ? '?' : bytesPerOp.toFixed(0)} B/op`)
}

await measure('parsePayload, one unsigned envelope', () => p.parsePayload(unsigned, upOptions))
await measure('parsePayload, one signed envelope', () => p.parsePayload(signed, upOptions))
await measure('parsePayload, batch of 16 (per payload)', () => p.parsePayload(batch16, upOptions), { iterations: 10_000, allocIterations: 500 })
// As up-pipeline calls it: with the parsed item's bodyBytes, into Node's buffer pool. (A
// module without those parameters ignores them.)
const encodeRecord = p.encodeBridgeRecord as (record: typeof recordInput, allocate?: (length: number) => Uint8Array) => Uint8Array
await measure('encodeBridgeRecord (bodyBytes, Buffer.allocUnsafe: as the hub calls it)', () => encodeRecord(recordInput, Buffer.allocUnsafe))
await measure('encodeBridgeRecord (bodyBytes, new Uint8Array)', () => encodeRecord(recordInput))
await measure('encodeBridgeRecord (body re-encoded, new Uint8Array)', () => encodeRecord({ ...recordInput, bodyBytes: undefined }))
await measure('checkEnvelope + validateBody', () => {
  const reason = p.checkEnvelope(item, { principalId: DEVICE_ID, nowMs: T, skewMs: SKEW_MS })
  return reason ?? p.validateBody(env.type, env.body, 'up')
})

// The replay guard at the hub's defaults (perKeyMax 50,000, totalMax 1,000,000), filled to
// 10 devices x 50,000 ids, so that every add also evicts that device's oldest id, as in a
// long saturated run. One op: has, then add, of a new id given as hex (what up-pipeline did,
// and CONNECT and HTTP nonces do) or as its 16 bytes (what up-pipeline does now).
for (const form of ['hex', 'bytes'] as const) {
  const keys = Array.from({ length: 10 }, (_, i) => `${i.toString(16).padStart(2, '0')}${DEVICE_ID.slice(2)}`)
  const guard = new p.ReplayGuard({ windowMs: 2 * SKEW_MS, perKeyMax: 50_000, totalMax: 1_000_000 })
  const id = idOf(0)
  const view = new DataView(id.buffer)
  let n = 0
  const op = (): boolean => {
    view.setFloat64(8, n)
    const key = keys[n % keys.length]
    const given = form === 'hex' ? p.toHex(id) : id
    const seen = guard.has(key, given)
    if (!seen) guard.add(key, given, T + (n >> 4))
    n++
    return seen
  }
  for (let i = 0; i < 500_000; i++) op()
  await measure(`ReplayGuard has + add, id as ${form === 'hex' ? 'toHex(id)' : 'bytes'} (500,000 held, evicting)`, op, { iterations: 100_000 })
}

// Memory held per remembered pair: 200,000 pairs over 10 keys, 32-hex-digit ids.
async function bytesPerPair (): Promise<void> {
  const name = 'ReplayGuard memory per remembered pair'
  if (only && !only.test(name)) return
  const count = 200_000
  const guard = new p.ReplayGuard({ windowMs: 2 * SKEW_MS, perKeyMax: 50_000, totalMax: 1_000_000 })
  const keys = Array.from({ length: 10 }, (_, i) => `${i.toString(16).padStart(2, '0')}${DEVICE_ID.slice(2)}`)
  collect()
  collect()
  const before = process.memoryUsage()
  for (let i = 0; i < count; i++) guard.add(keys[i % keys.length], p.toHex(idOf(i)), T + (i >> 4))
  collect()
  collect()
  const after = process.memoryUsage()
  const held = (after.heapUsed + after.arrayBuffers - before.heapUsed - before.arrayBuffers) / count
  if (guard.size !== count) throw new Error(`guard holds ${guard.size}, expected ${count}`)
  results.push({ name, nsPerOp: Number.NaN, bestNsPerOp: Number.NaN, bytesPerOp: held })
  console.error(`${name}: ${held.toFixed(0)} B`)
}
await bytesPerPair()

// The whole protocol share of one accepted unsigned message, as up-pipeline runs it (a
// module whose guard takes no bytes would read them as hex, as before).
{
  const guard = new p.ReplayGuard({ windowMs: 2 * SKEW_MS, perKeyMax: 50_000, totalMax: 1_000_000 })
  const payloads = Array.from({ length: 4096 }, (_, i) => envelope(i))
  let n = 0
  await measure('pipeline protocol work per unsigned message (parse, checks, replay, record)', () => {
    const parsed = p.parsePayload(payloads[n++ & 4095], upOptions)
    if (!parsed.ok) throw new Error('parse')
    const one = parsed.items[0]
    const e = one.envelope
    if (!e || p.checkEnvelope(one, { principalId: DEVICE_ID, nowMs: T, skewMs: SKEW_MS }) !== null) throw new Error('check')
    guard.has(DEVICE_ID, e.id)
    if (!p.validateBody(e.type, e.body, 'up')) throw new Error('body')
    guard.add(DEVICE_ID, e.id, T + n)
    return encodeRecord({
      type: e.type, src: DEVICE_ID, receivedAt: T + n, body: e.body, hubId: HUB_ID, signed: one.signed, raw: one.raw,
      bodyBytes: (one as { bodyBytes?: Uint8Array }).bodyBytes,
    }, Buffer.allocUnsafe)
  })
}

void sink
console.log(`protocol module: ${modulePath ?? 'src/protocol'}; node ${process.version}`)
console.log('| case | ns/op (median) | ns/op (best round) | bytes/op |')
console.log('|---|---:|---:|---:|')
for (const r of results) {
  const ns = (value: number): string => Number.isNaN(value) ? '' : value.toFixed(0)
  console.log(`| ${r.name} | ${ns(r.nsPerOp)} | ${ns(r.bestNsPerOp)} | ${r.bytesPerOp === null ? '?' : r.bytesPerOp.toFixed(0)} |`)
}
