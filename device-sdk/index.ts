/**
 * Metanode device SDK: the public, browser-safe entry. Node-only helpers (a key file
 * store) are in `./node.js`.
 */
export {
  generateKeyPair, keyPairFromSecretKey, exportKeyPair, importKeyPair, loadOrCreateKeyPair,
  MemoryKeyStore, sign, verify, signerFor, publicKeyBytes,
  type KeyPair, type ExportedKeyPair, type KeyStore,
} from './keys.js'
export { principalIdFromPublicKey, MessageType } from '../src/protocol/index.js'
export {
  DeviceClient, connectDevice,
  type DeviceClientOptions, type PublishOptions, type BatchOptions, type DownMessage, type DownHandler, type DeviceEvents, type DeviceStats,
} from './client.js'
export {
  ServiceClient, connectService, toBridgeRecord,
  type ServiceClientOptions, type BridgeRecord, type SendOptions, type ServiceEvents,
} from './service.js'
export { verifyEnvelope } from './verify.js'
export { HubHttpClient, type HttpClientOptions } from './http.js'
export { backoffDelayMs, DEFAULT_RECONNECT, type ReconnectOptions } from './backoff.js'
export type { ReconnectingInfo } from './connection.js'
export type { QueueFullPolicy } from './outbox.js'
export type {
  Ack, AckBody, Fields, ProofBody, StateDelta, UpBodies, DownBodies, UpTypeName, DownTypeName, MessageTypeName,
} from './messages.js'
export {
  MetanodeSdkError, AckError, TimeoutError, ClosedError, QueueFullError, PayloadTooLargeError, ConnectError, KeyError,
  ArgumentError, HttpError,
} from './errors.js'
