/**
 * TLS errors and the one table that maps a failure reason to its alert (RFC 8446
 * section 6). Messages name what was wrong, never a secret value.
 */

/** The caps the engine enforces by closing the connection, as named in `limitExceeded` events. */
export type TlsLimit = 'handshakeChangeCipherSpecs' | 'handshakeWarningAlerts';

/** AlertDescription values, RFC 8446 section 6. */
export const AlertDescription = {
  close_notify: 0,
  unexpected_message: 10,
  bad_record_mac: 20,
  record_overflow: 22,
  handshake_failure: 40,
  bad_certificate: 42,
  unsupported_certificate: 43,
  certificate_revoked: 44,
  certificate_expired: 45,
  certificate_unknown: 46,
  illegal_parameter: 47,
  unknown_ca: 48,
  access_denied: 49,
  decode_error: 50,
  decrypt_error: 51,
  protocol_version: 70,
  insufficient_security: 71,
  internal_error: 80,
  inappropriate_fallback: 86,
  user_canceled: 90,
  missing_extension: 109,
  unsupported_extension: 110,
  unrecognized_name: 112,
  bad_certificate_status_response: 113,
  unknown_psk_identity: 115,
  certificate_required: 116,
  no_application_protocol: 120,
} as const;

export type AlertName = keyof typeof AlertDescription;

const alertNames = new Map<number, AlertName>(
  Object.entries(AlertDescription).map(([k, v]) => [v, k as AlertName]),
);

/** The name of an alert code, or `unknown(N)`. */
export function alertName(code: number): string {
  return alertNames.get(code) ?? `unknown(${code})`;
}

/**
 * Why a connection failed, each reason mapped to the alert it is answered with
 * (RFC 8446 section 6.2; the section that names the alert is beside the throw site).
 * The one table: a throw site names its reason, never an alert; the alert follows.
 * A reason names what went wrong (as rustls's PeerMisbehaved / InvalidMessage
 * variants do), so reasons sharing one alert stay apart in codes and logs.
 */
export const FAILURE_ALERTS = {
  // Records (record/record-layer.ts, crypto/record-protection.ts, connection.ts).
  sslv2_client_hello: 'protocol_version',
  record_overflow_ciphertext: 'record_overflow',
  record_overflow_plaintext: 'record_overflow',
  record_overflow_inner_plaintext: 'record_overflow',
  protected_record_too_short: 'bad_record_mac',
  record_authentication_failed: 'bad_record_mac',
  inner_plaintext_without_content_type: 'unexpected_message',
  unknown_record_type: 'unexpected_message',
  unknown_inner_content_type: 'unexpected_message',
  unprotected_record_after_key_change: 'unexpected_message',
  application_data_before_handshake: 'unexpected_message',
  application_data_before_client_finished: 'unexpected_message',
  empty_handshake_record: 'unexpected_message',
  record_inside_handshake_message: 'unexpected_message',
  handshake_message_too_large: 'unexpected_message',
  handshake_data_across_key_change: 'unexpected_message',
  unexpected_change_cipher_spec: 'unexpected_message',
  too_many_change_cipher_specs: 'unexpected_message',
  empty_alert_record: 'unexpected_message',
  alert_record_wrong_length: 'decode_error',
  too_many_warning_alerts: 'unexpected_message',
  // Handshake messages out of order (connection.ts).
  expected_client_hello: 'unexpected_message',
  expected_client_finished: 'unexpected_message',
  unexpected_post_handshake_message: 'unexpected_message',
  key_update_request_invalid: 'illegal_parameter',
  // ClientHello decoding (wire/client-hello.ts); a framing error is malformed_message.
  malformed_message: 'decode_error',
  duplicate_extension: 'illegal_parameter',
  pre_shared_key_not_last: 'illegal_parameter',
  server_name_duplicate_host_name: 'illegal_parameter',
  server_name_not_dns_host_name: 'decode_error',
  server_name_without_host_name: 'decode_error',
  key_share_empty: 'illegal_parameter',
  key_share_duplicate_group: 'illegal_parameter',
  psk_binder_count_mismatch: 'illegal_parameter',
  record_size_limit_too_small: 'illegal_parameter',
  // Negotiation (handshake/negotiate.ts, server-flight.ts, psk.ts).
  legacy_version_too_old: 'protocol_version',
  legacy_version_not_tls: 'protocol_version',
  tls13_not_offered: 'protocol_version',
  legacy_compression_not_null: 'illegal_parameter',
  no_cipher_suite_in_common: 'handshake_failure',
  key_share_or_supported_groups_missing: 'missing_extension',
  key_share_group_not_offered: 'illegal_parameter',
  no_group_in_common: 'handshake_failure',
  no_application_protocol_in_common: 'no_application_protocol',
  signature_algorithms_missing: 'missing_extension',
  no_signature_scheme_in_common: 'handshake_failure',
  psk_key_exchange_modes_missing: 'missing_extension',
  psk_binder_invalid: 'decrypt_error',
  // After a HelloRetryRequest (handshake/hello-retry.ts, negotiate.ts).
  hrr_cipher_suite_changed: 'illegal_parameter',
  hrr_early_data_offered: 'illegal_parameter',
  hrr_cookie_not_echoed: 'illegal_parameter',
  hrr_key_share_not_requested_group: 'illegal_parameter',
  hrr_client_hello_mismatch: 'illegal_parameter',
  // The client's key share (crypto/key-exchange.ts).
  x25519_key_share_wrong_length: 'illegal_parameter',
  x25519_key_share_rejected: 'illegal_parameter',
  x25519_shared_secret_zero: 'illegal_parameter',
  ec_key_share_not_uncompressed_point: 'illegal_parameter',
  ec_key_share_not_on_curve: 'illegal_parameter',
  // The client Finished (handshake/client-finished.ts).
  client_finished_wrong_length: 'decode_error',
  client_finished_invalid: 'decrypt_error',
  // Not the peer's doing: the application ended it, or a bug of ours.
  aborted_by_application: 'internal_error',
  ecdhe_key_generation_failed: 'internal_error',
  signature_scheme_key_mismatch: 'internal_error',
  key_update_before_keys: 'internal_error',
  retry_state_unknown_cipher_suite: 'internal_error',
  unknown_group: 'internal_error',
  unreachable_value: 'internal_error',
  internal_failure: 'internal_error',
} as const satisfies Record<string, AlertName>;

/** A reason a connection failed: a key of {@link FAILURE_ALERTS}. */
export type FailureReason = keyof typeof FAILURE_ALERTS;

/** The stable code of a {@link TlsError}: `TLS_ERR_` and its reason in upper case. */
export type TlsErrorCode = `TLS_ERR_${Uppercase<FailureReason>}`;

/** The code for `reason`. */
export function failureCode(reason: FailureReason): TlsErrorCode {
  return `TLS_ERR_${reason.toUpperCase()}` as TlsErrorCode;
}

/**
 * A protocol failure that ends the connection with a fatal alert: the alert its
 * reason maps to. `detail` says what was seen (never a secret value); the message
 * is `<alert>: <detail>`.
 */
export class TlsError extends Error {
  override readonly name = 'TlsError';
  readonly code: TlsErrorCode;
  readonly alert: AlertName;

  constructor(
    readonly reason: FailureReason,
    detail: string = reason.replaceAll('_', ' '),
  ) {
    const alert = FAILURE_ALERTS[reason];
    super(`${alert}: ${detail}`);
    this.alert = alert;
    this.code = failureCode(reason);
  }
}

/** A cap exceeded (see `TlsLimit`): a fatal alert like any TlsError, and a `limitExceeded` event. */
export class TlsLimitError extends TlsError {
  constructor(
    readonly limit: TlsLimit,
    reason: FailureReason,
    detail: string,
  ) {
    super(reason, detail);
  }
}

/** Raised by `restore()` for a snapshot it cannot continue from. */
export class SnapshotError extends Error {
  override readonly name = 'SnapshotError';
  readonly code = 'TLS_ERR_SNAPSHOT';
}

/** Raised for a server configuration that cannot be used (bad certificate, key mismatch...). */
export class TlsConfigError extends Error {
  override readonly name = 'TlsConfigError';
  readonly code = 'TLS_ERR_CONFIG';
}

/**
 * The reason `err` ended a connection: a {@link TlsError} carries its own; a decoding
 * failure (a DecodeError of util/reader) is `malformed_message`; anything else is a bug
 * of ours, `internal_failure`.
 */
export function failureReasonOf(err: unknown): FailureReason {
  if (err instanceof TlsError) return err.reason;
  if (err instanceof Error && err.name === 'DecodeError') return 'malformed_message';
  return 'internal_failure';
}

/** The fatal alert `err` is answered with: its reason's, from {@link FAILURE_ALERTS}. */
export function alertFor(err: unknown): AlertName {
  return FAILURE_ALERTS[failureReasonOf(err)];
}
