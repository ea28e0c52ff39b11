/** The shape of a `baton bench` run: what the JSON file holds. */
import type { TerminatorSpec } from './terminators.js';
import type { Workload } from './workloads.js';

export interface Measurement {
  /** e.g. "node-tls", "baton r2 repl-on", or the external name. */
  readonly terminator: string;
  readonly spec: TerminatorSpec;
  /** Baton only: its record protection as its start line said (native, or node:crypto and why). */
  readonly recordProtection: string | null;
  readonly workload: Workload;
  /** Wall seconds of the measured window. */
  readonly seconds: number;
  /** CPU seconds of the terminator's process (all threads, and descendants) in the window. */
  readonly terminatorCpuSeconds: number;
  /** terminatorCpuSeconds / seconds: cores the terminator kept busy. */
  readonly terminatorCores: number;
  readonly bytes: number;
  readonly roundTrips: number;
  readonly handshakes: number;
  /** Resumed / handshakes (1 for a working resume workload, 0 for full handshakes). */
  readonly resumedFraction: number;
  /** Per wall second: bytes (bulk), round trips (echo) or handshakes. */
  readonly perSecond: number;
  /** The key figure, per CPU-second of the terminator: bytes, round trips or handshakes. */
  readonly perCpuSecond: number;
  /** Bulk only: perSecond in MB (10^6 bytes). */
  readonly mbPerSecond: number | null;
  /** Echo round trip, or connect-to-first-echoed-byte for handshakes; microseconds. */
  readonly p50Us: number | null;
  readonly p99Us: number | null;
  readonly errors: number;
  readonly firstError: string | null;
  readonly loadCpuSeconds: number;
  /** With --rounds n > 1: the per-CPU-second figure of every round, in run order (the measurement is the median round's). */
  readonly rounds?: readonly number[];
  /** Each figure over node-tls's for the same workload in the same run (null when node-tls has none). */
  readonly vsNode: {
    readonly perSecond: number | null;
    readonly perCpuSecond: number | null;
    readonly p50Us: number | null;
    readonly p99Us: number | null;
  };
}

/** Memory per idle connection of one terminator. */
export interface IdleMemory {
  readonly terminator: string;
  /** Connections open and idle when memory was read. */
  readonly connections: number;
  /** Resident memory before they were opened, and once they had been idle a while. */
  readonly rssBeforeBytes: number;
  readonly rssIdleBytes: number;
  readonly bytesPerConnection: number;
}

export interface TargetCheck {
  readonly name: string;
  /** What is compared with what, in words. */
  readonly goal: string;
  readonly threshold: number;
  /** Every configuration the goal applies to, with its ratio. */
  readonly cases: readonly { readonly terminator: string; readonly workload: Workload; readonly ratio: number }[];
  /** The smallest ratio over the cases (the verdict is on it). */
  readonly worst: number | null;
  readonly best: number | null;
  readonly met: boolean | null;
}

export interface BenchReport {
  readonly startedAt: string;
  readonly command: string;
  readonly node: string;
  readonly host: { readonly platform: string; readonly cpus: number; readonly model: string; readonly clockTicks: number };
  readonly options: Record<string, unknown>;
  readonly measurements: readonly Measurement[];
  readonly memory: readonly IdleMemory[];
  readonly failures: readonly { readonly terminator: string; readonly workload: Workload | null; readonly error: string }[];
  readonly targets: readonly TargetCheck[];
  readonly files: { readonly json: string; readonly svg: string; readonly profiles?: string };
  readonly elapsedSeconds: number;
}
