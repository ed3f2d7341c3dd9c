/** The hub as a library: start one in-process, with the same config the CLI takes. */
export { startHub, type Hub, type HubOptions } from './hub.js'
export { resolveConfig, DEFAULT_CONFIG, type HubConfig, type HubConfigInput } from './config.js'
export { MetanodeError, ConfigError } from './errors.js'
export { FeatureRejection, type MessageHandler, type AcceptedMessage } from '../broker/index.js'
