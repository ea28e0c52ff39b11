/**
 * Running the `baton` CLI as a user runs it (`node bin/baton.mjs ...`) from the
 * CLI suites: spawn with captured output, run a short command to its end, wait
 * for a line, bounded waiting, and killing whatever is still running after a test.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

/** The repository root (the spawned processes' working directory). */
export const ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const BIN = fileURLToPath(new URL('../../bin/baton.mjs', import.meta.url));

/** A spawned `baton`: its output so far (appended as it comes) and its exit code. */
export interface Run {
  readonly child: ChildProcess;
  stdout: string;
  stderr: string;
  readonly exit: Promise<number | null>;
}

const running = new Set<ChildProcess>();

/**
 * The environment the suites run `baton` in: the source under test (src/ through tsx),
 * never a dist/ an earlier `npm run build` left (see bin/baton.mjs).
 */
export const SOURCE_ENV: NodeJS.ProcessEnv = { BATON_FROM_SOURCE: '1' };

/** Spawns `baton ...args` in {@link ROOT}, with `env` over the test's environment. */
export function baton(args: string[], env: NodeJS.ProcessEnv = {}): Run {
  const child = spawn(process.execPath, [BIN, ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...SOURCE_ENV, ...env } });
  running.add(child);
  const run: Run = { child, stdout: '', stderr: '', exit: new Promise((resolve) => child.once('exit', (code) => resolve(code))) };
  child.stdout!.setEncoding('utf8').on('data', (d: string) => (run.stdout += d));
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (run.stderr += d));
  void run.exit.then(() => running.delete(child));
  return run;
}

/** Runs a short-lived baton command to its end (at most `timeoutMs`). */
export async function batonOnce(
  args: string[],
  env: NodeJS.ProcessEnv = {},
  timeoutMs = 20_000,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const run = baton(args, env);
  const code = await withTimeout(run.exit, timeoutMs, `baton ${args.join(' ')}`);
  return { code, stdout: run.stdout, stderr: run.stderr };
}

/** Kills (SIGKILL) every spawned baton still running: for afterEach. */
export function killAll(): void {
  for (const child of running) child.kill('SIGKILL');
  running.clear();
}

export function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout;
  return Promise.race([
    p.finally(() => clearTimeout(timer)),
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
    }),
  ]);
}

/**
 * Waits until `regex` matches the run's stdout (e.g. its start line); fails with
 * the process output if it exits first, or after `timeoutMs`.
 */
export function waitForMatch(run: Run, regex: RegExp, timeoutMs: number, what: string): Promise<RegExpExecArray> {
  const seen = new Promise<RegExpExecArray>((resolve, reject) => {
    const check = () => {
      const m = regex.exec(run.stdout);
      if (m) resolve(m);
    };
    run.child.stdout!.on('data', check);
    check();
    void run.exit.then((code) => reject(new Error(`baton exited ${code} before ${what}:\n${run.stdout}${run.stderr}`)));
  });
  return withTimeout(seen, timeoutMs, `${what} (stdout so far: ${JSON.stringify(run.stdout)})`);
}

export { sleep } from './wait.js';

/**
 * Runs `baton demo ...args` to its end (killed after `boundMs`); its output (stdout and
 * stderr interleaved) and exit code. `interruptWhen`: sends SIGINT once the output so
 * far matches it; `env` over the test's environment.
 */
export async function runDemo(
  args: string[],
  boundMs: number,
  opts: { interruptWhen?: RegExp; env?: NodeJS.ProcessEnv } = {},
): Promise<{ out: string; code: number | null }> {
  const child = spawn(process.execPath, [BIN, 'demo', ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...SOURCE_ENV, ...opts.env } });
  let out = '';
  let interrupted = false;
  const seen = (d: Buffer) => {
    out += d.toString();
    if (opts.interruptWhen && !interrupted && opts.interruptWhen.test(out)) {
      interrupted = true;
      child.kill('SIGINT');
    }
  };
  child.stdout.on('data', seen);
  child.stderr.on('data', seen);
  const timer = setTimeout(() => child.kill('SIGKILL'), boundMs);
  const code = await new Promise<number | null>((r) => child.once('exit', r));
  clearTimeout(timer);
  return { out, code };
}
