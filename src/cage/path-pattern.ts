/**
 * Path patterns of policy rules, compiled once to an anchored regular expression:
 * `/v1/devices/*\/state` (`*` is one whole segment) and `/v1/**` (`**`, last only, is any
 * rest, including none). Requests are matched on their path as Fastify's router sees it,
 * so that no spelling of a URL reaches a route while slipping past the rule meant for it.
 */

/** Longest pattern, in characters. */
export const PATH_PATTERN_CHARS_MAX = 512

// Characters a literal segment may not hold: the query and fragment delimiters, `%` (write
// the decoded character; the router compares decoded paths), spaces and controls.
const FORBIDDEN = /[?#%\s\u0000-\u001f\u007f]/

/**
 * Compiles a pattern; throws a RangeError that says what is wrong with it.
 *
 * A trailing slash on the request is accepted either way, because Fastify serves a prefixed
 * plugin's root route at both `/v1/devices` and `/v1/devices/`: a rule for one must cover
 * the other. Matching is case-sensitive, like Fastify's router by default.
 */
export function compilePathPattern (pattern: string): RegExp {
  if (pattern.length > PATH_PATTERN_CHARS_MAX) throw new RangeError(`must be at most ${PATH_PATTERN_CHARS_MAX} characters, got ${pattern.length}`)
  if (!pattern.startsWith('/')) throw new RangeError(`must start with "/", got ${JSON.stringify(pattern)}`)
  if (pattern === '/') return /^\/$/
  const segments = pattern.slice(1).split('/')
  if (segments[segments.length - 1] === '') throw new RangeError('must not end with "/" (a trailing slash on a request is matched either way)')
  let source = '^'
  for (let i = 0; i < segments.length; i++) {
    const segment = segments[i]
    if (segment === '') throw new RangeError('has an empty segment ("//")')
    if (segment === '**') {
      if (i !== segments.length - 1) throw new RangeError('may use "**" only as its last segment')
      // Zero or more further segments: `/v1/**` matches `/v1`, `/v1/` and `/v1/a/b`.
      return new RegExp(source + '(?:/.*)?$')
    }
    if (segment === '*') {
      source += '/[^/]+'
      continue
    }
    if (segment.includes('*')) throw new RangeError(`uses "*" inside the segment ${JSON.stringify(segment)}; "*" and "**" must be whole segments`)
    const bad = FORBIDDEN.exec(segment)
    if (bad !== null) throw new RangeError(`has the character ${JSON.stringify(bad[0])} in segment ${JSON.stringify(segment)}, which a path to match cannot hold`)
    source += '/' + segment.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')
  }
  return new RegExp(source + '/?$')
}

/**
 * The path of a request URL as find-my-way 9 (Fastify 5's router) routes it: up to the
 * first `?` or `#`, percent-decoded with `decodeURI`, which leaves reserved characters
 * (`%2F`, `%3F`, …) encoded, and with `%25` kept as it is so nothing is decoded twice.
 * Allocation-free for the common path without `%`.
 */
export function requestPath (url: string): string {
  let end = url.indexOf('?')
  const hash = url.indexOf('#')
  if (hash !== -1 && (end === -1 || hash < end)) end = hash
  const path = end === -1 ? url : url.slice(0, end)
  if (path.indexOf('%') === -1) return path
  try {
    return decodeURI(path.replaceAll('%25', '%2525'))
  } catch {
    // The router refuses such a URL with 400 before any handler; the raw path will do.
    return path
  }
}
