/**
 * The public facts of a certificate the cluster serves, as the start line, the logs
 * and `baton cluster` print them: never anything of its private key.
 */
import { X509Certificate } from 'node:crypto';

export interface CertificateFacts {
  /** SHA-256 of the DER leaf, colon-separated uppercase hex (as `openssl x509 -fingerprint -sha256`). */
  readonly fingerprint256: string;
  /** The leaf's subject on one line, e.g. `CN=localhost, O=Baton`. */
  readonly subject: string;
  /** The leaf's subjectAltName as Node prints it (`DNS:localhost, IP Address:127.0.0.1`), or ''. */
  readonly subjectAltName: string;
}

/** The facts of the leaf (the first certificate) of a PEM chain. */
export function certificateFacts(pemChain: string): CertificateFacts {
  const leaf = new X509Certificate(pemChain);
  return { fingerprint256: leaf.fingerprint256, subject: leaf.subject.replace(/\n/g, ', '), subjectAltName: leaf.subjectAltName ?? '' };
}
