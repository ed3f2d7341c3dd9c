/**
 * Body compression (§4, enc 1): raw DEFLATE (RFC 1951, no zlib or gzip wrapper) with
 * fflate, which runs in browsers too.
 */
import { Inflate, deflateSync } from 'fflate'
import { assertBytes } from './bytes.js'

/** DEFLATE cannot expand data by more than about 1032:1 (a 258-byte match per ~2 bits). */
const DEFLATE_RATIO_MAX = 1032
/** Smallest input slice fed to the inflater at a time: tiny slices cost more than they save. */
const INPUT_SLICE_MIN = 64

/** Raw DEFLATE of bytes (level 6, fflate's default). */
export function deflateRaw (bytes: Uint8Array): Uint8Array {
  assertBytes('bytes', bytes)
  return deflateSync(bytes)
}

export type InflateResult =
  | { ok: true, bytes: Uint8Array }
  | { ok: false, reason: 'too_large' | 'decode', detail: string }

/**
 * Inflates raw DEFLATE from an untrusted sender, refusing (`too_large`) as soon as the
 * output passes outBytesMax. The input is fed in slices small enough that one slice cannot
 * inflate to much more than outBytesMax, so a zip bomb costs at most about twice
 * outBytesMax (plus the 32 KiB window) before it is refused, never its full size.
 * Corrupt or truncated input is `decode`. Bytes after the final block are ignored.
 */
export function inflateRawBounded (bytes: Uint8Array, outBytesMax: number): InflateResult {
  assertBytes('bytes', bytes)
  if (!Number.isSafeInteger(outBytesMax) || outBytesMax < 0) {
    throw new TypeError(`outBytesMax expected a non-negative integer, got ${String(outBytesMax)}`)
  }
  const slice = Math.max(INPUT_SLICE_MIN, Math.floor(outBytesMax / DEFLATE_RATIO_MAX))
  const parts: Uint8Array[] = []
  let total = 0
  let over = false
  const inflater = new Inflate((chunk) => {
    if (over) return
    total += chunk.length
    if (total > outBytesMax) over = true
    else parts.push(chunk)
  })
  try {
    if (bytes.length === 0) inflater.push(bytes, true)
    for (let pos = 0; pos < bytes.length && !over; pos += slice) {
      inflater.push(bytes.subarray(pos, pos + slice), pos + slice >= bytes.length)
    }
  } catch (err) {
    return { ok: false, reason: 'decode', detail: `compressed body is not valid raw DEFLATE: ${(err as Error).message}` }
  }
  if (over) return { ok: false, reason: 'too_large', detail: `compressed body inflates past ${outBytesMax} bytes` }
  if (parts.length === 1) return { ok: true, bytes: parts[0] }
  const out = new Uint8Array(total)
  let offset = 0
  for (const part of parts) {
    out.set(part, offset)
    offset += part.length
  }
  return { ok: true, bytes: out }
}
