/**
 * The policy engine's `rate_limit` counters for the whole fleet (cluster mode), in Redis:
 * the same sliding-window counter as src/cage/rate-limit.ts (the current fixed window's count
 * plus the previous one's, weighted by how much of it still overlaps), evaluated and counted
 * in one Lua script, so that two processes counting at once cannot both take the last slot.
 */
import type { Redis } from 'ioredis'
import type { FleetRateCounter } from '../cage/policy.js'

// KEYS: the current and the previous window's counter. ARGV: max, windowMs, elapsed ms.
// Returns 0 when the request is counted, else Retry-After in whole seconds (as
// RateCounters.hit: a refused request is not counted).
const HIT = `
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
local previous = tonumber(redis.call('GET', KEYS[2]) or '0')
local max = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local elapsed = tonumber(ARGV[3])
if previous * (window - elapsed) / window + current < max then
  redis.call('INCR', KEYS[1])
  redis.call('PEXPIRE', KEYS[1], 2 * window)
  return 0
end
local wait
if current < max then
  wait = window - elapsed - (max - current) * window / previous
else
  wait = window - elapsed + window * (1 - max / current)
end
return math.max(1, math.ceil((wait + 1) / 1000))
`

export function fleetRateCounter (redis: Redis, keyPrefix: string): FleetRateCounter {
  return {
    async hit (key, max, windowMs, nowMs) {
      const startMs = nowMs - (nowMs % windowMs)
      const base = `${keyPrefix}policy-rate:${key}:`
      const result = await redis.eval(HIT, 2, `${base}${startMs}`, `${base}${startMs - windowMs}`, max, windowMs, nowMs - startMs)
      return Number(result)
    },
  }
}
