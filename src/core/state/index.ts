// The configuration state machine: what the shell imports.
export { checkKey, checkKind, checkName, isValidationError, validateCommand } from './command.js';
export { type EntryFile, splitEntryFile } from './entry-file.js';
export { DEFAULT_PROTOCOL, PROTOCOLS, type Protocol } from './kinds/fields.js';
export { KIND_NAMES, KINDS, type KindModule, kindModule } from './kinds/index.js';
export { PROXY_DEFAULTS_NAME, type ProxyDefaultsSpec } from './kinds/proxy-defaults.js';
export type { ServiceDefaultsSpec } from './kinds/service-defaults.js';
export { NAME_PATTERN, STATE_LIMITS } from './limits.js';
export { StateMachine } from './state-machine.js';
export { formatValidationError } from './text.js';
export type * from './types.js';
export { writeCheck } from './write-checks.js';
