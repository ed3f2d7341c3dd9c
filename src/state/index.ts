/**
 * Device state documents (docs/protocol.md §14): the pure document functions, the
 * store, the service the HTTP routes and the MQTT handlers share, and those handlers.
 */
export {
  mergeSection, computeDelta, patchProblem, jsonEqual, documentBytes, utf8Bytes, isJsonObject,
  type JsonValue, type JsonObject, type MetaTree, type StateMeta, type StateSections, type Merged,
} from './documents.js'
export { StateStore, type StoredState, type OwnedState, type StateChange } from './state-store.js'
export { createStateService, type StateService, type StateServiceOptions, type StateDocument } from './service.js'
export { createStateMqtt, type StateMqtt, type StateMqttOptions } from './mqtt.js'
export { STATE_ACK_CODES, StateVersionConflictError, NotADeviceError, type StateAckReason } from './errors.js'
