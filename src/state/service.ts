/**
 * Device state documents (docs/protocol.md §14): desired (set over HTTP), reported (sent
 * by the device over MQTT), the computed delta, a version every change increments, and
 * per-field timestamps. After every change to desired the device is sent its delta as a
 * StateUpdate on its `down` topic; the MQTT side (mqtt.ts) also sends it when the device
 * comes back.
 */
import type { Logger } from 'pino'
import type { StateLimits } from '../config.js'
import type { SqlDatabase } from '../store/sql.js'
import { BadRequestError, NotFoundError, PayloadTooLargeError } from '../errors.js'
import { encodeEnvelope, idBytes, isPrincipalId, signEnvelope, MessageType, type Signer } from '../protocol/index.js'
import {
  computeDelta, mergeSection, patchProblem, utf8Bytes, type JsonObject, type StateMeta,
} from './documents.js'
import { NotADeviceError, StateVersionConflictError } from './errors.js'
import { StateStore, type OwnedState, type StoredState } from './state-store.js'

/** The whole document, as GET and StatusSync return it. */
export interface StateDocument {
  desired: JsonObject
  reported: JsonObject
  /** What desired asks for that reported does not show yet. */
  delta: JsonObject
  /** 0 until the first change; every change adds 1. */
  version: number
  /** Per-field timestamps (ms) of desired and reported, mirroring their shape. */
  meta: StateMeta
}

export interface StateServiceOptions {
  /** The hub's database, SQLite or PostgreSQL: processes sharing it share the documents. */
  db: SqlDatabase
  log: Logger
  limits: Readonly<StateLimits>
  /** The hub node's principal id: the src of the StateUpdates it sends. */
  hubId: string
  /** Signs those StateUpdates with the hub's key when set (the hub does when it signs Acks). */
  sign?: Signer
  /** Publishes an envelope on the device's `down` topic (QoS 1); resolves once the broker took it. */
  publishDown: (deviceId: string, envelope: Uint8Array) => Promise<void>
  /** The clock, in ms; tests pass their own. */
  nowMs?: () => number
}

export interface StateService {
  /** NotFoundError for an unknown id or a principal that is not a device. */
  get (deviceId: string): Promise<StateDocument>
  /**
   * Merges patch into desired (RFC 7396: null deletes a key), as the next version, and
   * sends the device its delta. With expectedVersion, refuses with
   * StateVersionConflictError unless the document is at that version when the change is
   * made. BadRequestError for a patch that is not a JSON object within depthMax,
   * PayloadTooLargeError when the document would pass documentBytesMax, NotFoundError as get.
   */
  patchDesired (deviceId: string, patch: unknown, expectedVersion?: number): Promise<StateDocument>
  /** Merges the device's report into reported, as the next version. Errors as patchDesired. */
  report (deviceId: string, reported: unknown): Promise<StateDocument>
  /**
   * Sends the device its current delta as a StateUpdate: only when it is not empty, unless
   * `evenIfEmpty`. Returns whether one was sent; false also for unknown ids and non-devices.
   */
  sendDelta (deviceId: string, options?: { evenIfEmpty?: boolean }): Promise<boolean>
  /** Stops sending and waits for StateUpdates already handed to the broker. Idempotent. */
  close (): Promise<void>
}

/**
 * Most StateUpdates handed to the broker and not yet taken by it. The broker takes them
 * from memory at once, so this bound is only reached when it is failing; past it, deltas
 * are not sent (logged), and the device gets the current one when it next connects.
 */
const SENDING_MAX = 10_000

export function createStateService (options: StateServiceOptions): StateService {
  const { log, limits, hubId } = options
  // Checked here, not when the first delta is encoded: by then the change is committed.
  if (!isPrincipalId(hubId)) throw new TypeError(`hubId expected a principal id (32 lowercase hex characters), got ${JSON.stringify(hubId)}`)
  for (const key of ['documentBytesMax', 'depthMax'] as const) {
    if (!Number.isSafeInteger(limits?.[key]) || limits[key] <= 0) throw new TypeError(`limits.${key} expected a positive integer, got ${String(limits?.[key])}`)
  }
  // better-sqlite3's Database has a transaction() too, so this is what tells the two apart.
  if (typeof options.db?.lock !== 'function' || typeof options.db.dialect !== 'string') throw new TypeError('db expected a SqlDatabase')
  if (typeof options.publishDown !== 'function') throw new TypeError('publishDown expected a function')
  const nowMs = options.nowMs ?? Date.now
  const store = new StateStore(options.db)
  const sending = new Set<Promise<void>>()
  let closed = false

  function emit (deviceId: string, delta: JsonObject, version: number): void {
    if (closed) return
    if (sending.size >= SENDING_MAX) {
      log.warn({ deviceId, version }, 'too many state deltas in flight; this one is not sent')
      return
    }
    const envelope = encodeEnvelope({ type: MessageType.StateUpdate, src: hubId, dst: deviceId, body: { delta, version } })
    const bytes = options.sign ? signEnvelope(envelope, idBytes(hubId), options.sign) : envelope
    // Handed to the broker at once. Changes made at the same time (here or by another
    // process) may send their deltas out of version order; a device ignores a delta older
    // than one it handled (docs/protocol.md §14.2).
    const sent = options.publishDown(deviceId, bytes).then(
      () => { log.debug({ deviceId, version }, 'state delta sent') },
      err => { log.warn({ err, deviceId, version }, 'could not send a state delta') },
    ).finally(() => { sending.delete(sent) })
    sending.add(sent)
  }

  async function change (deviceId: string, section: 'desired' | 'reported', patch: unknown, expectedVersion?: number): Promise<{ before: OwnedState, after: StoredState }> {
    if (expectedVersion !== undefined && (!Number.isSafeInteger(expectedVersion) || expectedVersion < 0)) {
      throw new TypeError(`expectedVersion expected a non-negative integer, got ${String(expectedVersion)}`)
    }
    const problem = patchProblem(patch, limits.depthMax, section)
    if (problem !== null) throw new BadRequestError(problem)
    const at = nowMs()
    const changed = await store.update(deviceId, at, current => {
      requireDevice(deviceId, current)
      const { state } = current
      if (expectedVersion !== undefined && expectedVersion !== state.version) {
        throw new StateVersionConflictError(deviceId, state.version, expectedVersion)
      }
      const merged = mergeSection(state[section], state.meta[section], patch as JsonObject, at)
      const next = { ...state, [section]: merged.section, meta: { ...state.meta, [section]: merged.meta } }
      const desiredJson = JSON.stringify(next.desired)
      const reportedJson = JSON.stringify(next.reported)
      const bytes = utf8Bytes(desiredJson) + utf8Bytes(reportedJson)
      if (bytes > limits.documentBytesMax) {
        throw new PayloadTooLargeError(`the state document of ${deviceId} would be ${bytes} bytes, more than the ${limits.documentBytesMax} allowed`)
      }
      return { desired: next.desired, reported: next.reported, meta: next.meta, desiredJson, reportedJson }
    })
    if (changed === undefined) throw unknown(deviceId)
    return changed
  }

  return {
    async get (deviceId) {
      const current = await store.read(deviceId)
      if (current === undefined) throw unknown(deviceId)
      requireDevice(deviceId, current)
      return toDocument(current.state)
    },

    async patchDesired (deviceId, patch, expectedVersion) {
      const { before, after } = await change(deviceId, 'desired', patch, expectedVersion)
      const document = toDocument(after)
      log.debug({ deviceId, version: after.version }, 'desired state changed')
      // A delta that this change emptied is sent too, so that a device still working
      // towards the old one learns that nothing is asked of it any more.
      if (!isEmpty(document.delta) || !isEmpty(computeDelta(before.state.desired, before.state.reported))) {
        emit(deviceId, document.delta, document.version)
      }
      return document
    },

    async report (deviceId, reported) {
      // No delta is sent after a report: a device that cannot reach a desired value would
      // otherwise be told again after each report, and answer with another report.
      return toDocument((await change(deviceId, 'reported', reported)).after)
    },

    async sendDelta (deviceId, sendOptions = {}) {
      if (closed) return false
      const current = await store.read(deviceId)
      if (current === undefined || current.role !== 'device' || closed) return false
      const { state } = current
      const delta = computeDelta(state.desired, state.reported)
      if (isEmpty(delta) && sendOptions.evenIfEmpty !== true) return false
      emit(deviceId, delta, state.version)
      return true
    },

    async close () {
      closed = true
      while (sending.size > 0) await Promise.all([...sending])
    },
  }
}

function toDocument (state: StoredState): StateDocument {
  return {
    desired: state.desired,
    reported: state.reported,
    delta: computeDelta(state.desired, state.reported),
    version: state.version,
    meta: state.meta,
  }
}

function requireDevice (id: string, owned: OwnedState): void {
  if (owned.role !== 'device') throw new NotADeviceError(id, owned.role)
}

function unknown (id: string): NotFoundError {
  return new NotFoundError(`no principal with id ${JSON.stringify(id)}`)
}

function isEmpty (object: JsonObject): boolean {
  return Object.keys(object).length === 0
}
