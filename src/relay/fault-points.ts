/**
 * The relay's named fault points, apart from the relay's worker module: the CLI, the admin
 * API and the demo validate `--at` names with this list without loading the worker code.
 */
/** Fault points a test or operator can arm to crash a relay at an exact protocol moment. */
export const RELAY_FAULT_POINTS = [
  /** The post-ClientHello state is committed; the server flight is held until the gateway learns it. */
  'relay.afterClientHelloReplicated',
  /** The server flight left; the client Finished has arrived and is not yet processed. */
  'relay.beforeClientFinished',
  /** Application data is being relayed (established connection, input received). */
  'relay.midStream',
  /** A KeyUpdate was just processed or started; its output is not yet visible to the gateway. */
  'relay.duringKeyUpdate',
  /** A connection's state is about to be committed into the store. */
  'relay.duringReplication',
] as const;
export type RelayFaultPoint = (typeof RELAY_FAULT_POINTS)[number];
