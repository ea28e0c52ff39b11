/**
 * A relay's warm-up at start: the code of a takeover (the state store's load, the
 * engine's restore) runs only when a sibling dies, maybe hours later, and cold it costs
 * several times what it costs compiled: the first load of a takeover measured 0.4 ms,
 * the next ones 0.03 to 0.15 ms. So it runs a few dozen times here, on a private
 * one-slot store and throwaway engines; no real state or secret is touched.
 */
import { RECORD_STATE_LENGTH, TlsServerEngine } from '../tls/index.js';
import type { TlsDeps, TlsServerConfig } from '../tls/types.js';
import { createStore, StateStore } from './state-store.js';

const TOKEN = 1;

export function warmUpTakeover(config: TlsServerConfig, deps: TlsDeps, rounds = 64): void {
  // The engine's own part: restoring an established connection (ciphers, key schedule).
  TlsServerEngine.warmUp(config, deps, rounds);
  // The store's part: a commit written, found and copied out, as a takeover reads it.
  const store = new StateStore(createStore(1));
  const record = new Float64Array(RECORD_STATE_LENGTH);
  for (let i = 0; i < rounds; i++) {
    const engine = TlsServerEngine.create(config, deps);
    engine.recordState(record);
    store.writer(0, TOKEN).commit(1, engine.encodedSnapshot(), record);
    const loaded = store.load(0, TOKEN);
    if (loaded === null) throw new Error('warm-up: the commit just written did not load');
    TlsServerEngine.restoreEncoded(loaded.snapshot, loaded.record, config, deps);
    // The new owner's writer continues after the commit it restored from.
    store.writer(0, TOKEN);
    store.clear(0);
  }
}
