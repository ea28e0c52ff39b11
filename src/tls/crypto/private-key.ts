/** The private key type of the engine's certificates (node:crypto's KeyObject), named where node:crypto may be named. */
export type { KeyObject as PrivateKey } from 'node:crypto';
