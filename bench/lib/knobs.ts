/**
 * A bench setting from the environment: `fallback` when unset, else a number within
 * [min, max], bounded so that a typo cannot start an unbounded run (or exhaust the ~20k
 * file descriptors of this machine).
 */
export function envNumber (name: string, fallback: number, min: number, max: number, options: { integer?: boolean } = {}): number {
  const raw = process.env[name]
  if (raw === undefined || raw === '') return fallback
  const value = Number(raw)
  const ok = options.integer ? Number.isInteger(value) : Number.isFinite(value)
  if (!ok || value < min || value > max) throw new Error(`${name} must be ${options.integer ? 'an integer' : 'a number'} from ${min} to ${max}, got "${raw}"`)
  return value
}
