/** Option checks shared by the clients: caller bugs throw at once, saying what they got. */
import { ArgumentError } from './errors.js'

export function requireInt (name: string, value: unknown, min: number, max = Number.MAX_SAFE_INTEGER): void {
  if (!Number.isSafeInteger(value) || (value as number) < min || (value as number) > max) {
    throw new ArgumentError(`${name} must be an integer from ${min} to ${max}, got ${String(value)}`)
  }
}

export function stripUndefined<T extends object> (value: T): Partial<T> {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as Partial<T>
}

/** mqtt://, mqtts://, ws:// or wss://: the transports the hub serves. */
export function requireHubUrl (url: unknown): asserts url is string {
  if (typeof url !== 'string' || !/^(mqtts?|wss?):\/\/./.test(url)) {
    throw new ArgumentError(`url must start with mqtt://, mqtts://, ws:// or wss://, got ${typeof url === 'string' ? url : typeof url}`)
  }
}
