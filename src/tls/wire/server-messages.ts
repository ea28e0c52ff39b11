/**
 * Encoders for the handshake messages a server sends (RFC 8446 section 4), each
 * returned whole, 4-byte handshake header included, as it enters the transcript.
 */
import { Writer } from '../../util/writer.js';
import { ExtensionType, HandshakeType, HRR_RANDOM, TLS12, TLS13 } from './constants.js';

/** Wraps a body in the Handshake header: msg_type and a 24-bit length. */
export function handshakeMessage(type: number, body: (w: Writer) => void): Uint8Array {
  const w = new Writer(512);
  w.u8(type).vec(3, body);
  return w.finish();
}

export interface ServerHelloParams {
  readonly random: Uint8Array;
  readonly legacySessionId: Uint8Array;
  readonly cipherSuite: number;
  readonly keyShare: { readonly group: number; readonly publicKey: Uint8Array };
  /** Index of the accepted PSK identity, if any. */
  readonly selectedIdentity: number | null;
}

/** ServerHello, RFC 8446 section 4.1.3. */
export function serverHello(p: ServerHelloParams): Uint8Array {
  return handshakeMessage(HandshakeType.server_hello, (w) => {
    w.u16(TLS12).bytes(p.random).vecBytes(1, p.legacySessionId).u16(p.cipherSuite).u8(0);
    w.vec(2, (e) => {
      e.u16(ExtensionType.key_share).vec(2, (k) => k.u16(p.keyShare.group).vecBytes(2, p.keyShare.publicKey));
      e.u16(ExtensionType.supported_versions).vec(2, (v) => v.u16(TLS13));
      if (p.selectedIdentity !== null) {
        e.u16(ExtensionType.pre_shared_key).vec(2, (v) => v.u16(p.selectedIdentity!));
      }
    });
  });
}

/** HelloRetryRequest: a ServerHello with the special random (RFC 8446 section 4.1.4), with an optional cookie (4.2.2). */
export function helloRetryRequest(
  legacySessionId: Uint8Array,
  cipherSuite: number,
  group: number,
  cookie: Uint8Array | null,
): Uint8Array {
  return handshakeMessage(HandshakeType.server_hello, (w) => {
    w.u16(TLS12).bytes(HRR_RANDOM).vecBytes(1, legacySessionId).u16(cipherSuite).u8(0);
    w.vec(2, (e) => {
      e.u16(ExtensionType.key_share).vec(2, (k) => k.u16(group));
      if (cookie) e.u16(ExtensionType.cookie).vec(2, (c) => c.vecBytes(2, cookie));
      e.u16(ExtensionType.supported_versions).vec(2, (v) => v.u16(TLS13));
    });
  });
}

export interface EncryptedExtensionsParams {
  /** Groups to list in supported_groups (section 4.2.7); empty: none. */
  readonly groups: readonly number[];
  /** Our record_size_limit (RFC 8449), sent only when the client sent one. */
  readonly recordSizeLimit: number | null;
  readonly acknowledgeServerName: boolean;
  readonly alpn: string | null;
}

/** EncryptedExtensions, RFC 8446 section 4.3.1. */
export function encryptedExtensions(p: EncryptedExtensionsParams): Uint8Array {
  const { alpn } = p;
  return handshakeMessage(HandshakeType.encrypted_extensions, (w) =>
    w.vec(2, (e) => {
      if (p.groups.length) {
        e.u16(ExtensionType.supported_groups).vec(2, (g) => g.vec(2, (l) => p.groups.forEach((x) => l.u16(x))));
      }
      if (p.recordSizeLimit !== null) e.u16(ExtensionType.record_size_limit).vec(2, (l) => l.u16(p.recordSizeLimit!));
      // RFC 6066 section 3: an empty server_name tells the client its name was used.
      if (p.acknowledgeServerName) e.u16(ExtensionType.server_name).u16(0);
      if (alpn !== null) {
        e.u16(ExtensionType.application_layer_protocol_negotiation).vec(2, (a) =>
          a.vec(2, (l) => l.vecBytes(1, Buffer.from(alpn, 'latin1'))),
        );
      }
    }),
  );
}

/** Certificate, RFC 8446 section 4.4.2 (empty request context, no entry extensions). */
export function certificate(chain: readonly Uint8Array[]): Uint8Array {
  return handshakeMessage(HandshakeType.certificate, (w) => {
    w.u8(0);
    w.vec(3, (l) => {
      for (const der of chain) l.vecBytes(3, der).u16(0);
    });
  });
}

/** CertificateVerify, RFC 8446 section 4.4.3. */
export function certificateVerify(scheme: number, signature: Uint8Array): Uint8Array {
  return handshakeMessage(HandshakeType.certificate_verify, (w) => w.u16(scheme).vecBytes(2, signature));
}

/** Finished, RFC 8446 section 4.4.4. */
export function finished(verifyData: Uint8Array): Uint8Array {
  return handshakeMessage(HandshakeType.finished, (w) => w.bytes(verifyData));
}

export interface NewSessionTicketParams {
  readonly lifetimeSeconds: number;
  readonly ageAdd: number;
  readonly nonce: Uint8Array;
  readonly ticket: Uint8Array;
}

/** NewSessionTicket, RFC 8446 section 4.6.1 (no extensions: we never accept early data). */
export function newSessionTicket(p: NewSessionTicketParams): Uint8Array {
  return handshakeMessage(HandshakeType.new_session_ticket, (w) =>
    w.u32(p.lifetimeSeconds).u32(p.ageAdd).vecBytes(1, p.nonce).vecBytes(2, p.ticket).u16(0),
  );
}

/** KeyUpdate, RFC 8446 section 4.6.3. */
export function keyUpdate(updateRequested: boolean): Uint8Array {
  return handshakeMessage(HandshakeType.key_update, (w) => w.u8(updateRequested ? 1 : 0));
}

/** The synthetic message_hash message that replaces ClientHello1 after a HelloRetryRequest (section 4.4.1). */
export function messageHash(hashOfClientHello1: Uint8Array): Uint8Array {
  return handshakeMessage(HandshakeType.message_hash, (w) => w.bytes(hashOfClientHello1));
}
