/**
 * The actor runtime (DESIGN.md, layer 2): actor system, location-transparent refs,
 * bounded mailboxes, worker hosting, OTP-style supervisors, heartbeat watchdog, fault
 * injection, data channels for bulk bytes between threads, and the shared piscina pool.
 * Independent of TLS.
 */
export { defineActor } from './actor.js';
export type { ActorBehaviour, ActorContext, PoolClient, PoolTask, Replier } from './actor.js';
export { Arena, createArena } from './arena.js';
export type { ArenaBuffers } from './arena.js';
export { describeReason } from './crash.js';
export type { Crash, CrashReason } from './crash.js';
export { createDataChannel, createRing, mainEnd, maxEntryFor, ringCapacity, RingReader, RingWriter, workerEnd } from './data-channel.js';
export type { ChannelEnd, DataChannelBuffers } from './data-channel.js';
export { ActorError, isActorError } from './errors.js';
export type { ActorErrorCode } from './errors.js';
export { FAULT_KINDS, INJECTED_EXIT_CODE } from './faults.js';
export type { ArmOptions, FaultKind } from './faults.js';
export { backoffDelay, DEFAULT_BACKOFF, DEFAULT_INTENSITY, recordRestart } from './intensity.js';
export type { Backoff, IntensityLimit, RestartDecision } from './intensity.js';
export { decodeValue, encodeValue } from './protocol.js';
export type { PoolOptions } from './pool.js';
export { isRef, refOf } from './ref.js';
export { actorSubject, badNodeName, NODE_NAME } from './node-name.js';
export type { ActorRef } from './ref.js';
export { Supervisor } from './supervisor.js';
export type { ChildInfo, ChildSpec, ChildStart, RestartType, Strategy, SupervisorEvent, SupervisorRequest, SupervisorSpec } from './supervisor.js';
export { ActorSystem } from './system.js';
export type { RemoteRouter, SystemEvent, SystemOptions } from './system.js';
export type { WatchdogOptions } from './watchdog.js';
export type { WorkerActorOptions } from './worker-handle.js';
