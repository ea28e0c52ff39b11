/**
 * A real `nats-server -js` for the suites that need NATS: the product's own launcher
 * (src/cluster/nats-server-process.ts), which `baton demo --nodes` uses too. Never
 * skipped: a missing binary fails the suite with a message saying what to install
 * (.ci/run installs the Debian package nats-server when missing).
 */
export { freePort, natsServerBinary, startNatsServer, type NatsServer, type NatsServerOptions } from '../../src/cluster/nats-server-process.js';
