/**
 * Reading a configuration file on reload (config-read.ts): a regular file inside the
 * --config file's folder is read; a FIFO (whose open would block without a writer),
 * /dev/zero (endless), a link to it, an oversized file and anything outside the folder
 * are refused with a ConfigFileError naming the file, without hanging.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ConfigFileError } from '../../src/cluster/config-file.js';
import { MAX_CONFIG_BYTES, readConfigText } from '../../src/cluster/config-read.js';

const dir = mkdtempSync(join(tmpdir(), 'baton-config-read-'));
const config = join(dir, 'baton.yaml');
writeFileSync(config, 'relays: 1\n');

async function refused(path: string, within: string | undefined, pattern: RegExp): Promise<void> {
  const e = await readConfigText(path, within).then(
    () => null,
    (err: unknown) => err,
  );
  expect(e).toBeInstanceOf(ConfigFileError);
  expect((e as Error).message).toMatch(pattern);
}

describe('readConfigText', () => {
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('reads a regular file beside the --config one', async () => {
    writeFileSync(join(dir, 'next.yaml'), 'relays: 2\n');
    expect(await readConfigText(join(dir, 'next.yaml'), config)).toBe('relays: 2\n');
    expect(await readConfigText(config)).toBe('relays: 1\n');
  });

  it('refuses a FIFO without blocking on it', async () => {
    const fifo = join(dir, 'fifo.yaml');
    execFileSync('mkfifo', [fifo]);
    await refused(fifo, config, /fifo\.yaml: not a regular file/);
  });

  it('refuses /dev/zero: outside the folder, and through a link inside it', async () => {
    await refused('/dev/zero', config, /^\/dev\/zero: only files in the folder of the --config file/);
    symlinkSync('/dev/zero', join(dir, 'zero.yaml'));
    await refused(join(dir, 'zero.yaml'), config, /zero\.yaml: not a regular file/);
    await refused('/dev/zero', undefined, /not a regular file/);
  });

  it('refuses a file over 1 MiB, a link out of the folder, and ../', async () => {
    writeFileSync(join(dir, 'big.yaml'), Buffer.alloc(MAX_CONFIG_BYTES + 1, 0x20));
    await refused(join(dir, 'big.yaml'), config, /big\.yaml: 1048577 bytes, more than the 1048576/);
    const outside = mkdtempSync(join(tmpdir(), 'baton-config-outside-'));
    try {
      writeFileSync(join(outside, 'x.yaml'), 'relays: 3\n');
      symlinkSync(join(outside, 'x.yaml'), join(dir, 'out.yaml'));
      await refused(join(dir, 'out.yaml'), config, /out\.yaml: links outside the folder/);
      await refused(join(dir, '..', 'x.yaml'), config, /only files in the folder/);
    } finally {
      rmSync(outside, { recursive: true, force: true });
    }
    await refused(join(dir, 'missing.yaml'), config, /cannot read .*ENOENT/);
  });
});
