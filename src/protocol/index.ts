/**
 * The wire contract of protocol v1 (docs/protocol.md): pure functions shared by the hub
 * and the device SDK. No I/O; runs in Node and browsers.
 */
export * from './constants.js'
export { ProtocolError } from './errors.js'
export { toHex, fromHex, concatBytes, equalBytes } from './bytes.js'
export { principalIdFromPublicKey, idBytes, isPrincipalId, PUBLIC_KEY_BYTES } from './ids.js'
export { encodeCbor, decodeCbor } from './cbor.js'
export { CborScanError, readHead, walkItem, walkWhole, type Head, type ScanStats, type WalkOptions } from './cbor-scan.js'
export { deflateRaw, inflateRawBounded, type InflateResult } from './compression.js'
export { encodeEnvelope, type Envelope, type EnvelopeInput } from './envelope.js'
export { signEnvelope, sigStructure, readCoseSign1, PROTECTED_EDDSA, SIGNATURE_BYTES, type Signer, type CoseSign1 } from './cose.js'
export { encodeBatch } from './batch.js'
export { parsePayload, type ParseOptions, type ParseResult, type ParsedItem } from './decode.js'
export { checkEnvelope, validateBody, bodyProblem, type CheckContext } from './checks.js'
export { ReplayGuard, type ReplayGuardOptions } from './replay-guard.js'
export {
  connectSigningInput, buildConnectPassword, parseConnectPassword, CONNECT_CONTEXT, CONNECT_PASSWORD_BYTES,
  type ConnectPassword,
} from './connect-password.js'
export { encodeBridgeRecord, decodeBridgeRecord, type BridgeRecord, type BridgeRecordInput } from './bridge-record.js'
export { ackBody, encodeAck, type AckBody, type AckInput, type FeatureReason } from './ack.js'
export { TOPIC_PREFIX, upTopic, downTopic, bridgeTopic, parseDeviceTopic } from './topics.js'
export {
  HTTP_AUTH_SCHEME, EMPTY_BODY_DIGEST, httpSigningInput, bodyDigest, contentDigestHeader, parseContentDigest,
  signHttpRequest, parseHttpAuthorization, type HttpAuthorization,
} from './http-signature.js'
