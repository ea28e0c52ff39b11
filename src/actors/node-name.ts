/**
 * Names of clusters and nodes across machines: each is one token of a NATS subject
 * (the remote actor transport listens on `baton.<cluster>.node.<node>.actor`), so
 * letters, digits, `-` and `_` only. Kept apart from remote.ts so that checking a
 * name (flags, the configuration file) loads no NATS client.
 */

/** Names NATS subjects can carry as one token: letters, digits, `-` and `_`. */
export const NODE_NAME = /^[A-Za-z0-9_-]{1,64}$/;

/** Why a name cannot be a cluster or node name, or undefined when it can. */
export function badNodeName(name: string): string | undefined {
  return NODE_NAME.test(name) ? undefined : `"${name}" is not a node name: 1 to 64 letters, digits, - or _`;
}

/** The subject node `node` of cluster `cluster` listens on for actor messages. */
export function actorSubject(cluster: string, node: string): string {
  return `baton.${cluster}.node.${node}.actor`;
}
