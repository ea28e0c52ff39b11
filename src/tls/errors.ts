/**
 * TLS errors and the one table that maps an error to its alert (RFC 8446 section 6).
 * Messages name what was wrong, never a secret value.
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

/** A protocol failure that ends the connection with a fatal alert. */
export class TlsError extends Error {
  override readonly name = 'TlsError';
  readonly code: string;

  constructor(
    readonly alert: AlertName,
    reason: string,
  ) {
    super(`${alert}: ${reason}`);
    this.code = `TLS_ERR_${alert.toUpperCase()}`;
  }
}

/** A cap exceeded (see `TlsLimit`): a fatal alert like any TlsError, and a `limitExceeded` event. */
export class TlsLimitError extends TlsError {
  constructor(
    readonly limit: TlsLimit,
    alert: AlertName,
    reason: string,
  ) {
    super(alert, reason);
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
 * The one error-to-alert table: a {@link TlsError} carries its alert; a decoding
 * failure is `decode_error`; anything else is a bug of ours, `internal_error`.
 */
export function alertFor(err: unknown): AlertName {
  if (err instanceof TlsError) return err.alert;
  if (err instanceof Error && err.name === 'DecodeError') return 'decode_error';
  return 'internal_error';
}
