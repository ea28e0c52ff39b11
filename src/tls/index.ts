/** The TLS 1.3 server engine: public API. */
export { TlsServerEngine } from './connection.js';
export { aeadBackend, type AeadBackend } from './crypto/record-aead.js';
export { releaseFreeMemory } from './crypto/native-aead.js';
export { pickCertificate } from './certificates.js';
export { loadCertifiedKey } from './crypto/certified-key.js';
export { signCertificateVerify, signatureSchemesFor } from './crypto/signature.js';
export { encodeSnapshot, decodeSnapshot } from './snapshot-codec.js';
export {
  applyRecordState,
  RECORD_STATE_LENGTH,
  RecordStateFlag,
  RecordStateIndex,
  SNAPSHOT_FORMAT,
  SNAPSHOT_VERSION,
  type TlsSnapshot,
} from './state.js';
export {
  TlsError,
  TlsLimitError,
  TlsConfigError,
  SnapshotError,
  AlertDescription,
  FAILURE_ALERTS,
  alertFor,
  alertName,
  failureCode,
  failureReasonOf,
  type AlertName,
  type FailureReason,
  type TlsErrorCode,
} from './errors.js';
export type * from './types.js';
export { DEFAULT_HANDSHAKE_NOISE_CAP, DEFAULT_TICKET_LIFETIME_SECONDS } from './types.js';
export { isSessionId, SESSION_ID_LEN } from './session/ticket.js';
