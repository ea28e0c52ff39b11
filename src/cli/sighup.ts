/**
 * SIGHUP for `baton cluster`: always handled, so a signal an operator sends after
 * renewing a certificate (certbot's deploy hook, `systemctl reload`) never kills the
 * cluster. What it reloads depends on how the cluster was started:
 *
 * - `--config FILE`: the file (and `--cert`/`--key` if given too);
 * - `--cert`/`--key` only: those two files, rolled out as the next configuration version;
 * - neither (a self-signed certificate made in memory): nothing, and it says so.
 *
 * A SIGHUP that arrives while the cluster is starting is logged and ignored.
 */
import type { LogFields, LogLevel } from '../util/log.js';

/** What a SIGHUP reloads. */
export type HupPlan =
  | { readonly kind: 'config'; readonly configFile: string }
  | { readonly kind: 'certificates'; readonly certFile: string; readonly keyFile: string }
  | { readonly kind: 'nothing' };

export function hupPlan(configPath: string | undefined, files: { readonly cert: string; readonly key: string } | undefined): HupPlan {
  if (configPath !== undefined) return { kind: 'config', configFile: configPath };
  if (files) return { kind: 'certificates', certFile: files.cert, keyFile: files.key };
  return { kind: 'nothing' };
}

type Log = (level: LogLevel, msg: string, fields?: LogFields) => void;

/** The SIGHUP handler, installed at once; {@link HupHandler.ready} arms the reload once the cluster is up. */
export interface HupHandler {
  ready(reload: () => Promise<unknown>): void;
  dispose(): void;
}

export function handleSighup(plan: HupPlan, log: Log, proc: Pick<NodeJS.Process, 'on' | 'off'> = process): HupHandler {
  let reload: (() => Promise<unknown>) | null = null;
  const onHup = () => {
    if (plan.kind === 'nothing') {
      log('info', 'SIGHUP: nothing to reload (self-signed certificate made at start, no --config or --cert/--key files)', {
        event: 'config.reload',
        signal: 'SIGHUP',
        reloaded: 'nothing',
      });
      return;
    }
    if (!reload) {
      log('warn', 'SIGHUP while starting: ignored (nothing to reload yet)', { event: 'config.reload', signal: 'SIGHUP' });
      return;
    }
    if (plan.kind === 'config') {
      log('info', 'SIGHUP: reloading the configuration', { event: 'config.reload', signal: 'SIGHUP', reloaded: 'config', configFile: plan.configFile });
    } else {
      log('info', 'SIGHUP: reloading the certificate files', {
        event: 'config.reload',
        signal: 'SIGHUP',
        reloaded: 'certificates',
        certFile: plan.certFile,
        keyFile: plan.keyFile,
      });
    }
    reload().catch((e: unknown) => log('error', 'reload failed', { event: 'config.invalid', error: e }));
  };
  proc.on('SIGHUP', onHup);
  return {
    ready(r) {
      reload = r;
    },
    dispose() {
      proc.off('SIGHUP', onHup);
    },
  };
}
