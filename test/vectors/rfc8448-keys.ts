/** The server's RSA private key of RFC 8448 section 2, as a node:crypto KeyObject. */
import { createPrivateKey, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export function rfc8448ServerKey(): KeyObject {
  const text = readFileSync(fileURLToPath(new URL('./rfc8448.txt', import.meta.url)), 'latin1');
  const section = text.slice(text.indexOf('2.  Private Keys'), text.indexOf('3.  Simple 1-RTT Handshake\n\n'));
  const value = (label: string): string => {
    const at = section.indexOf(`   ${label}:`);
    const rest = section.slice(at + label.length + 4);
    const m = /^\s*((?:[0-9a-f]{2}\s+|Thomson.*\n|Internet-Draft.*\n|\f)+)/.exec(rest)!;
    const hex = m[1]!.replace(/Thomson.*\n|Internet-Draft.*\n|\f/g, '').replace(/\s+/g, '');
    return Buffer.from(hex, 'hex').toString('base64url');
  };
  return createPrivateKey({
    format: 'jwk',
    key: {
      kty: 'RSA',
      n: value('modulus (public)'),
      e: value('public exponent'),
      d: value('private exponent'),
      p: value('prime1'),
      q: value('prime2'),
      dp: value('exponent1'),
      dq: value('exponent2'),
      qi: value('coefficient'),
    },
  });
}
