/**
 * IP addresses and CIDR prefixes for the policy engine, parsed once and compared as four
 * 32-bit words. Every address is held in its IPv6 form: IPv4 `a.b.c.d` is the IPv4-mapped
 * `::ffff:a.b.c.d` (RFC 4291 2.5.5.2), and so is an IPv4-mapped IPv6 address, which is how a
 * dual-stack listener reports an IPv4 client. So `10.0.0.0/8` matches both `10.1.2.3` and
 * `::ffff:10.1.2.3`, and an IPv6 prefix matches an IPv4 client only if it covers its mapped
 * form (`::/0` does, `2001:db8::/32` does not). Pure functions: no I/O.
 */

/** An address as four 32-bit words, most significant first (words are unsigned). */
export interface Address {
  readonly w0: number
  readonly w1: number
  readonly w2: number
  readonly w3: number
  /** True for IPv4 and IPv4-mapped IPv6 addresses. */
  readonly v4: boolean
}

/** A parsed prefix: the network's words and the mask of the bits that must match. */
export interface Cidr {
  /** The prefix as written, for error messages and display. */
  readonly text: string
  readonly w0: number
  readonly w1: number
  readonly w2: number
  readonly w3: number
  readonly m0: number
  readonly m1: number
  readonly m2: number
  readonly m3: number
}

// RFC 3986 `dec-octet`: no leading zeros, which some parsers would read as octal.
const IPV4 = /^(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\.(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\.(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\.(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])$/
const HEX_GROUP = /^[0-9a-fA-F]{1,4}$/
const PREFIX_LENGTH = /^(0|[1-9][0-9]{0,2})$/
/** Longest textual IPv6 address (RFC 4291 with an IPv4 tail), in characters. */
const IPV6_CHARS_MAX = 45
/** The high 96 bits of an IPv4-mapped address: ::ffff:0:0/96. */
const MAPPED_W2 = 0x0000ffff

/** Parses an address a socket reports; null when it is not one. A zone (`%eth0`) is ignored. */
export function parseAddress (text: string): Address | null {
  const zone = text.indexOf('%')
  const bare = zone === -1 ? text : text.slice(0, zone)
  const v4 = parseIpv4(mappedTail(bare) ?? bare)
  if (v4 !== null) return { w0: 0, w1: 0, w2: MAPPED_W2, w3: v4, v4: true }
  const groups = parseIpv6(bare)
  if (groups === null) return null
  return fromGroups(groups)
}

/**
 * Parses `a.b.c.d/n` or `x:y::z/n`; a bare address is a one-address prefix (/32 or /128).
 * Throws a RangeError that says what is wrong, including host bits set below the prefix,
 * which usually means a typo.
 */
export function parseCidr (text: string): Cidr {
  const slash = text.indexOf('/')
  const addressText = slash === -1 ? text : text.slice(0, slash)
  if (addressText.includes('%')) throw new RangeError('must not carry a zone (%…)')
  const v4 = parseIpv4(addressText)
  let address: Address
  let bits: number
  if (v4 !== null) {
    address = { w0: 0, w1: 0, w2: MAPPED_W2, w3: v4, v4: true }
    bits = 32
  } else {
    const groups = parseIpv6(addressText)
    if (groups === null) throw new RangeError('is not an IPv4 or IPv6 address or prefix')
    address = fromGroups(groups)
    bits = 128
  }
  let length = bits
  if (slash !== -1) {
    const lengthText = text.slice(slash + 1)
    if (!PREFIX_LENGTH.test(lengthText) || Number(lengthText) > bits) {
      throw new RangeError(`has prefix length ${JSON.stringify(lengthText)}; it must be an integer from 0 to ${bits}`)
    }
    length = Number(lengthText)
  }
  // An IPv4 prefix is the mapped IPv6 prefix 96 bits longer.
  const length128 = bits === 32 ? 96 + length : length
  const m0 = maskWord(length128, 0)
  const m1 = maskWord(length128, 1)
  const m2 = maskWord(length128, 2)
  const m3 = maskWord(length128, 3)
  if ((address.w0 & ~m0) !== 0 || (address.w1 & ~m1) !== 0 || (address.w2 & ~m2) !== 0 || (address.w3 & ~m3) !== 0) {
    const network = formatNetwork(address, m0, m1, m2, m3, v4 !== null)
    throw new RangeError(`has bits set below its /${length} prefix; did you mean "${network}/${length}"?`)
  }
  return { text, w0: address.w0, w1: address.w1, w2: address.w2, w3: address.w3, m0, m1, m2, m3 }
}

export function cidrContains (cidr: Cidr, address: Address): boolean {
  // XOR leaves the differing bits; the mask keeps those the prefix fixes. Bitwise results
  // are signed 32-bit, so compare with 0 rather than with an unsigned word.
  return ((address.w0 ^ cidr.w0) & cidr.m0) === 0 &&
    ((address.w1 ^ cidr.w1) & cidr.m1) === 0 &&
    ((address.w2 ^ cidr.w2) & cidr.m2) === 0 &&
    ((address.w3 ^ cidr.w3) & cidr.m3) === 0
}

/**
 * The key an address is counted under by per-address rate limits: an IPv4 address itself,
 * and an IPv6 address's /64, since one host commonly holds a whole /64 and could otherwise
 * step around any limit by changing its interface id. Unparseable input is its own key.
 */
export function addressKey (text: string): string {
  // The common cases, without a full parse: IPv4, plain or as a dual-stack socket reports it.
  const tail = mappedTail(text)
  if (tail !== null && IPV4.test(tail)) return tail
  if (IPV4.test(text)) return text
  const address = parseAddress(text)
  if (address === null) return text
  if (address.v4) return formatIpv4(address.w3)
  return `${(address.w0 >>> 16).toString(16)}:${(address.w0 & 0xffff).toString(16)}:${(address.w1 >>> 16).toString(16)}:${(address.w1 & 0xffff).toString(16)}::/64`
}

/** The dotted tail of `::ffff:a.b.c.d` (any case), or null: the form of most IPv4 clients on a dual-stack listener. */
function mappedTail (text: string): string | null {
  if (text.length < 14 || text.charCodeAt(0) !== 58 || text.charCodeAt(1) !== 58 || text.charCodeAt(6) !== 58) return null
  const prefix = text.slice(2, 6)
  return prefix === 'ffff' || prefix.toLowerCase() === 'ffff' ? text.slice(7) : null
}

function parseIpv4 (text: string): number | null {
  const m = IPV4.exec(text)
  if (m === null) return null
  return ((Number(m[1]) << 24) | (Number(m[2]) << 16) | (Number(m[3]) << 8) | Number(m[4])) >>> 0
}

/** The eight 16-bit groups of an IPv6 address (RFC 4291 2.2), or null. */
function parseIpv6 (text: string): number[] | null {
  if (text.length === 0 || text.length > IPV6_CHARS_MAX) return null
  const gap = text.indexOf('::')
  if (gap === -1) {
    const groups = parseGroups(text, true)
    return groups !== null && groups.length === 8 ? groups : null
  }
  if (text.indexOf('::', gap + 1) !== -1) return null
  const head = parseGroups(text.slice(0, gap), false)
  const tail = parseGroups(text.slice(gap + 2), true)
  // "::" stands for at least one group of zeros.
  if (head === null || tail === null || head.length + tail.length > 7) return null
  const groups = head
  while (groups.length + tail.length < 8) groups.push(0)
  for (const group of tail) groups.push(group)
  return groups
}

function parseGroups (text: string, ipv4TailAllowed: boolean): number[] | null {
  if (text.length === 0) return []
  const items = text.split(':')
  const groups: number[] = []
  for (let i = 0; i < items.length; i++) {
    const item = items[i]
    if (HEX_GROUP.test(item)) {
      groups.push(parseInt(item, 16))
    } else if (ipv4TailAllowed && i === items.length - 1) {
      const v4 = parseIpv4(item)
      if (v4 === null) return null
      groups.push(v4 >>> 16, v4 & 0xffff)
    } else {
      return null
    }
  }
  return groups
}

function fromGroups (g: number[]): Address {
  const w0 = ((g[0] << 16) | g[1]) >>> 0
  const w1 = ((g[2] << 16) | g[3]) >>> 0
  const w2 = ((g[4] << 16) | g[5]) >>> 0
  const w3 = ((g[6] << 16) | g[7]) >>> 0
  return { w0, w1, w2, w3, v4: w0 === 0 && w1 === 0 && w2 === MAPPED_W2 }
}

/** The mask of word `index` (0 to 3) for a prefix of `length` bits out of 128. */
function maskWord (length: number, index: number): number {
  const bits = Math.max(0, Math.min(32, length - 32 * index))
  // A shift by 32 is a shift by 0 in JavaScript, hence the special case.
  return bits === 0 ? 0 : (0xffffffff << (32 - bits)) >>> 0
}

function formatIpv4 (word: number): string {
  return `${word >>> 24}.${(word >>> 16) & 0xff}.${(word >>> 8) & 0xff}.${word & 0xff}`
}

function formatNetwork (a: Address, m0: number, m1: number, m2: number, m3: number, v4: boolean): string {
  const words = [(a.w0 & m0) >>> 0, (a.w1 & m1) >>> 0, (a.w2 & m2) >>> 0, (a.w3 & m3) >>> 0]
  if (v4) return formatIpv4(words[3])
  const groups: string[] = []
  for (const word of words) groups.push((word >>> 16).toString(16), (word & 0xffff).toString(16))
  // Uncompressed but valid; the user sees which bits to clear.
  return groups.join(':')
}
