/**
 * docs/protocol.md §14 against the code: the example document and merge are what the
 * service makes, and the Ack code table is STATE_ACK_CODES, no more, no less.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { STATE_ACK_CODES } from '../../src/state/errors.js'
import { serviceFixture } from './helpers.js'

const doc = readFileSync(fileURLToPath(new URL('../../docs/protocol.md', import.meta.url)), 'utf8')
const section = doc.slice(doc.indexOf('\n## 14. Device state documents'))

test('§14: the example document and the example merge are what the service makes', async t => {
  const example = JSON.parse(/^```json\n([\s\S]*?)^```$/m.exec(section)![1])
  const { state, enrol, clock } = await serviceFixture(t)
  const device = await enrol()
  clock.nowMs = 1_767_225_600_000
  await state.patchDesired(device.id, { led: 'on', fan: { speed: 2, mode: 'auto' } })
  clock.nowMs += 1_000
  await state.report(device.id, { led: 'on', fan: { speed: 1, mode: 'auto' }, firmware: '1.2.0' })
  assert.deepEqual(await state.get(device.id), example)

  const patch = JSON.parse(/^patch of desired +(.*)$/m.exec(section)![1])
  const after = JSON.parse(/^desired afterwards +(.*)$/m.exec(section)![1])
  assert.deepEqual((await state.patchDesired(device.id, patch)).desired, after)
})

test('§14.3 and §5.1 list the state Ack codes exactly', () => {
  const rows = [...section.matchAll(/^\| (10[1-9]) \| `([a-z_]+)` \|/gm)].map(m => [m[2], Number(m[1])])
  assert.deepEqual(Object.fromEntries(rows), STATE_ACK_CODES)
  const codes = Object.values(STATE_ACK_CODES)
  assert.match(doc, new RegExp(`^\\| ${Math.min(...codes)}–${Math.max(...codes)} \\| ${Object.keys(STATE_ACK_CODES).map(r => `\`${r}\``).join(', ')} \\|`, 'm'))
})
