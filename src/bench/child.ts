/**
 * A child process of the bench that talks JSON lines: objects in on stdin, events
 * (`{"ev": ...}`) out on stdout. Lines that are not JSON are kept as `text` (a
 * terminator's log) and can be waited for by pattern.
 */
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { isSource, siblingModule } from '../util/module-url.js';

/** The package's root folder (two up from src/bench/ and from dist/bench/ alike). */
export const PACKAGE_ROOT = fileURLToPath(new URL('../../', import.meta.url));

/** The `baton` command of this package, which the bench runs as a terminator. */
export const BATON_BIN = fileURLToPath(new URL('../../bin/baton.mjs', import.meta.url));

/**
 * Environment for a child `baton`: from src/ (a checkout, under tsx) it runs src/ too,
 * never a dist/ that may be older than the source.
 */
export const BATON_ENV: NodeJS.ProcessEnv = isSource(import.meta.url) ? { BATON_FROM_SOURCE: '1' } : {};

/**
 * Node arguments that run the bench program `stem` (e.g. `./backend`) beside this
 * module: the TypeScript through tsx from src/, the compiled JavaScript from dist/.
 */
export function programArgs(stem: string): string[] {
  const url = siblingModule(import.meta.url, stem);
  return isSource(url.href) ? ['--import', 'tsx', fileURLToPath(url)] : [fileURLToPath(url)];
}

export type Event = Record<string, unknown> & { ev?: string };

export class JsonChild {
  readonly proc: ChildProcess;
  readonly exited: Promise<number | null>;
  /** Every non-JSON stdout line, and stderr, for error messages. */
  readonly log: string[] = [];
  private readonly events: Event[] = [];
  private readonly texts: string[] = [];
  private wake: (() => void) | null = null;

  constructor(
    readonly name: string,
    command: string,
    args: readonly string[],
    opts: SpawnOptions & { echoStderr?: boolean } = {},
  ) {
    this.proc = spawn(command, [...args], { ...opts, stdio: ['pipe', 'pipe', 'pipe'] });
    this.exited = new Promise((resolve) => {
      this.proc.on('exit', (code) => {
        resolve(code);
        this.wake?.();
      });
      this.proc.on('error', (e) => {
        this.log.push(`spawn failed: ${e.message}`);
        resolve(-1);
        this.wake?.();
      });
    });
    createInterface({ input: this.proc.stdout! }).on('line', (line) => {
      let parsed: unknown;
      try {
        parsed = line.startsWith('{') ? JSON.parse(line) : undefined;
      } catch {
        parsed = undefined;
      }
      if (parsed && typeof parsed === 'object') this.events.push(parsed as Event);
      else {
        this.texts.push(line);
        this.keep(line);
      }
      this.wake?.();
    });
    createInterface({ input: this.proc.stderr! }).on('line', (line) => {
      this.keep(line);
      if (opts.echoStderr) process.stderr.write(`  [${name}] ${line}\n`);
    });
  }

  private keep(line: string): void {
    this.log.push(line);
    if (this.log.length > 50) this.log.shift();
  }

  get pid(): number {
    return this.proc.pid ?? -1;
  }

  get running(): boolean {
    return this.proc.exitCode === null && this.proc.signalCode === null;
  }

  send(o: object): void {
    this.proc.stdin!.write(`${JSON.stringify(o)}\n`);
  }

  /** The next event named `ev` (optionally with matching `id`). */
  next<T = Event>(ev: string | readonly string[], timeoutMs: number, id?: number): Promise<T> {
    const evs: readonly string[] = typeof ev === 'string' ? [ev] : ev;
    return this.waitFor(() => {
      const i = this.events.findIndex((e) => evs.includes(e.ev ?? '') && (id === undefined || e.id === id));
      return i >= 0 ? (this.events.splice(i, 1)[0] as T) : undefined;
    }, `'${evs.join("' or '")}' event`, timeoutMs);
  }

  /** The first capture group of the first text line matching `re`. */
  nextText(re: RegExp, timeoutMs: number): Promise<RegExpExecArray> {
    return this.waitFor(() => {
      for (let i = 0; i < this.texts.length; i++) {
        const m = re.exec(this.texts[i]!);
        if (m) {
          this.texts.splice(0, i + 1);
          return m;
        }
      }
      this.texts.length = 0;
      return undefined;
    }, `a line matching ${re}`, timeoutMs);
  }

  private async waitFor<T>(take: () => T | undefined, what: string, timeoutMs: number): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const got = take();
      if (got !== undefined) return got;
      if (!this.running) throw new Error(`${this.name} exited (${this.proc.exitCode ?? this.proc.signalCode}) before ${what}${this.tail()}`);
      if (Date.now() > deadline) throw new Error(`${this.name}: no ${what} within ${timeoutMs} ms${this.tail()}`);
      await new Promise<void>((resolve) => {
        this.wake = resolve;
        setTimeout(resolve, 100).unref();
      });
      this.wake = null;
    }
  }

  private tail(): string {
    const t = this.log.slice(-5).join(' | ');
    return t ? `: ${t}` : '';
  }

  /** SIGTERM (or closes stdin when `gentle`), waits, then SIGKILL. */
  async stop(opts: { gentle?: boolean; graceMs?: number } = {}): Promise<void> {
    if (!this.running) return;
    if (opts.gentle) this.proc.stdin!.end();
    else this.proc.kill('SIGTERM');
    const grace = opts.graceMs ?? 10_000;
    const done = await Promise.race([this.exited.then(() => true), new Promise<false>((r) => setTimeout(r, grace, false).unref())]);
    if (!done && this.running) {
      this.proc.kill('SIGKILL');
      await this.exited;
    }
  }
}
