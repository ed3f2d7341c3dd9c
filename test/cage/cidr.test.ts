import assert from 'node:assert/strict'
import { test } from 'node:test'
import { addressKey, cidrContains, parseAddress, parseCidr } from '../../src/cage/cidr.js'

function contains (cidr: string, address: string): boolean {
  const parsed = parseAddress(address)
  assert.ok(parsed, `${address} parses`)
  return cidrContains(parseCidr(cidr), parsed)
}

test('IPv4 prefixes match the addresses inside them, and only those', () => {
  assert.equal(contains('10.0.0.0/8', '10.255.1.2'), true)
  assert.equal(contains('10.0.0.0/8', '11.0.0.0'), false)
  assert.equal(contains('192.168.1.0/24', '192.168.1.255'), true)
  assert.equal(contains('192.168.1.0/24', '192.168.2.0'), false)
  assert.equal(contains('0.0.0.0/0', '255.255.255.255'), true)
  assert.equal(contains('203.0.113.7', '203.0.113.7'), true) // a bare address is a /32
  assert.equal(contains('203.0.113.7/32', '203.0.113.8'), false)
  assert.equal(contains('128.0.0.0/1', '200.1.1.1'), true) // the sign bit of a 32-bit word
  assert.equal(contains('128.0.0.0/1', '127.255.255.255'), false)
  assert.equal(contains('172.16.0.0/12', '172.31.255.255'), true)
  assert.equal(contains('172.16.0.0/12', '172.32.0.0'), false)
})

test('IPv6 prefixes match across all four words, with :: and embedded IPv4 forms', () => {
  assert.equal(contains('2001:db8::/32', '2001:db8:ffff::1'), true)
  assert.equal(contains('2001:db8::/32', '2001:db9::1'), false)
  assert.equal(contains('2001:db8:0:0:8000::/65', '2001:db8::8000:0:0:1'), true)
  assert.equal(contains('2001:db8:0:0:8000::/65', '2001:db8::7fff:0:0:1'), false)
  assert.equal(contains('::1/128', '::1'), true)
  assert.equal(contains('::1', '::2'), false)
  assert.equal(contains('fe80::/10', 'fe80::1%eth0'), true) // the zone of a link-local address is ignored
  assert.equal(contains('::/0', '2001:db8::1'), true)
  assert.equal(contains('64:ff9b::/96', '64:ff9b::192.0.2.1'), true)
  assert.equal(contains('2001:DB8::/32', '2001:0db8:0000::0001'), true) // case and leading zeros in groups
})

test('IPv4-mapped IPv6 clients are IPv4: IPv4 prefixes match them; IPv6 prefixes only through the mapped range', () => {
  assert.equal(contains('127.0.0.0/8', '::ffff:127.0.0.1'), true)
  assert.equal(contains('10.0.0.0/8', '::ffff:a00:1'), true) // hex spelling of ::ffff:10.0.0.1
  assert.equal(contains('10.0.0.0/8', '::ffff:11.0.0.1'), false)
  assert.equal(contains('::ffff:10.0.0.0/104', '10.1.2.3'), true)
  assert.equal(contains('::ffff:0:0/96', '192.0.2.1'), true)
  assert.equal(contains('::/0', '192.0.2.1'), true)
  assert.equal(contains('2001:db8::/32', '192.0.2.1'), false)
  assert.equal(contains('10.0.0.0/8', '::a00:1'), false) // IPv4-compatible (deprecated) is not mapped
  assert.equal(parseAddress('::ffff:1.2.3.4')!.v4, true)
  assert.equal(parseAddress('1.2.3.4')!.v4, true)
  assert.equal(parseAddress('::1')!.v4, false)
})

test('parseCidr says what is wrong with a bad prefix', () => {
  const cases: Array<[string, RegExp]> = [
    ['10.0.0.1/8', /bits set below its \/8 prefix; did you mean "10\.0\.0\.0\/8"/],
    ['2001:db8::1/32', /did you mean "2001:db8:0:0:0:0:0:0\/32"/],
    ['10.0.0.0/33', /prefix length "33"; it must be an integer from 0 to 32/],
    ['::/129', /from 0 to 128/],
    ['10.0.0.0/', /prefix length ""/],
    ['10.0.0.0/08', /prefix length "08"/],
    ['10.0.0.0/-1', /prefix length "-1"/],
    ['10.0.0', /not an IPv4 or IPv6 address/],
    ['10.0.0.256', /not an IPv4 or IPv6 address/],
    ['010.0.0.1', /not an IPv4 or IPv6 address/], // leading zero: octal to some parsers
    ['1:2:3:4:5:6:7:8:9', /not an IPv4 or IPv6 address/],
    ['1::2::3', /not an IPv4 or IPv6 address/],
    ['1:2:3:4:5:6:7::8', /not an IPv4 or IPv6 address/], // :: must stand for at least one group
    [':1:2:3:4:5:6:7', /not an IPv4 or IPv6 address/],
    ['12345::', /not an IPv4 or IPv6 address/],
    ['::ffff:1.2.3', /not an IPv4 or IPv6 address/],
    ['fe80::1%eth0/64', /zone/],
    ['localhost', /not an IPv4 or IPv6 address/],
    ['', /not an IPv4 or IPv6 address/],
  ]
  for (const [text, message] of cases) {
    assert.throws(() => parseCidr(text), message, text)
  }
  assert.equal(parseAddress('not-an-ip'), null)
  assert.equal(parseAddress(''), null)
})

test('addressKey: IPv4 (mapped or not) as itself, IPv6 as its /64', () => {
  assert.equal(addressKey('192.0.2.1'), '192.0.2.1')
  assert.equal(addressKey('::ffff:192.0.2.1'), '192.0.2.1')
  assert.equal(addressKey('2001:db8:1:2:3:4:5:6'), '2001:db8:1:2::/64')
  assert.equal(addressKey('2001:db8:1:2::ffff'), '2001:db8:1:2::/64')
  assert.equal(addressKey('garbage'), 'garbage')
})
