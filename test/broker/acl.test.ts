import { test } from 'node:test'
import assert from 'node:assert/strict'
import { publishDecision, maySubscribe, mayReceive, type ClientIdentity } from '../../broker/acl.js'

const A = 'a'.repeat(32)
const B = 'b'.repeat(32)
const device: ClientIdentity = { kind: 'principal', id: A, role: 'device' }
const service: ClientIdentity = { kind: 'principal', id: B, role: 'service' }
const node: ClientIdentity = { kind: 'principal', id: B, role: 'node' }
const anonymous: ClientIdentity = { kind: 'anonymous' }

test('a device publishes only on its own up topic', () => {
  assert.equal(publishDecision(device, `mn/v1/d/${A}/up`), 'up')
  for (const topic of [`mn/v1/d/${B}/up`, `mn/v1/d/${A}/down`, `mn/v1/bridge/status_update/${A}`, 'plain', '$SYS/x', `mn/v1/d/${A}/up/x`]) {
    assert.equal(publishDecision(device, topic), 'deny', topic)
  }
})

test('a device subscribes only to its own down topic, without wildcards', () => {
  assert.equal(maySubscribe(device, `mn/v1/d/${A}/down`), true)
  for (const filter of [`mn/v1/d/${B}/down`, `mn/v1/d/+/down`, 'mn/v1/#', '#', `mn/v1/d/${A}/#`, 'mn/v1/bridge/#']) {
    assert.equal(maySubscribe(device, filter), false, filter)
  }
})

test('a service publishes on any device down topic and subscribes to bridge topics only', () => {
  assert.equal(publishDecision(service, `mn/v1/d/${A}/down`), 'allow')
  for (const topic of [`mn/v1/d/${A}/up`, 'mn/v1/d/short/down', `mn/v1/bridge/status_update/${A}`, 'plain']) {
    assert.equal(publishDecision(service, topic), 'deny', topic)
  }
  assert.equal(maySubscribe(service, 'mn/v1/bridge/#'), true)
  assert.equal(maySubscribe(service, 'mn/v1/bridge/status_update/+'), true)
  for (const filter of ['#', 'mn/v1/#', `mn/v1/d/${A}/up`, 'mn/+/bridge/#', '+/v1/bridge/#']) {
    assert.equal(maySubscribe(service, filter), false, filter)
  }
})

test('a node uses mn/v1/n/ and reads bridge topics', () => {
  assert.equal(publishDecision(node, 'mn/v1/n/birth'), 'allow')
  assert.equal(publishDecision(node, `mn/v1/d/${A}/down`), 'deny')
  assert.equal(maySubscribe(node, 'mn/v1/n/#'), true)
  assert.equal(maySubscribe(node, 'mn/v1/bridge/#'), true)
})

test('anonymous clients: anything outside mn/v1/, nothing inside it', () => {
  assert.equal(publishDecision(anonymous, 'sensors/1'), 'allow')
  assert.equal(publishDecision(anonymous, `mn/v1/d/${A}/up`), 'deny')
  assert.equal(publishDecision(anonymous, `$SYS/broker/new/clients`), 'deny')
  assert.equal(maySubscribe(anonymous, '#'), true)
  assert.equal(maySubscribe(anonymous, 'mn/v1/#'), false)
  assert.equal(maySubscribe(anonymous, '$SYS/#'), false)
  assert.equal(mayReceive(anonymous, '$SYS/broker/new/clients'), false)
  assert.equal(maySubscribe(anonymous, 'mn/v1/bridge/#'), false)
  assert.equal(mayReceive(anonymous, `mn/v1/bridge/status_update/${A}`), false)
  assert.equal(mayReceive(anonymous, 'sensors/1'), true)
  assert.equal(mayReceive(device, `mn/v1/d/${A}/down`), true)
})
