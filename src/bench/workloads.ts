/** The workloads of `baton bench`, and what each one measures. */
export const WORKLOADS = ['bulk-up', 'bulk-down', 'echo', 'handshake', 'resume'] as const;
export type Workload = (typeof WORKLOADS)[number];

/** What a workload's headline figure counts. */
export function unitOf(w: Workload): 'bytes' | 'roundTrips' | 'handshakes' {
  if (w === 'bulk-up' || w === 'bulk-down') return 'bytes';
  if (w === 'echo') return 'roundTrips';
  return 'handshakes';
}

/** A measured window as the load process reports it. */
export interface LoadResult {
  readonly workload: Workload;
  /** Wall seconds of the measured window. */
  readonly seconds: number;
  /** Application bytes moved (upload: written by the clients; download: read by them). */
  readonly bytes: number;
  readonly roundTrips: number;
  /** Connections that completed a handshake and one echoed byte. */
  readonly handshakes: number;
  /** Of those, how many resumed a session (PSK) instead of a full handshake. */
  readonly resumed: number;
  /** Echo round trip or handshake (connect to first echoed byte) latency, microseconds. */
  readonly p50Us: number | null;
  readonly p99Us: number | null;
  readonly errors: number;
  readonly firstError: string | null;
  /** CPU seconds of the load process itself in the window (to show it stays light). */
  readonly loadCpuSeconds: number;
}
