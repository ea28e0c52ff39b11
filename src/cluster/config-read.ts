/**
 * Reading a configuration file on reload without blocking the event loop or reading
 * without end: only a regular file of at most {@link MAX_CONFIG_BYTES}, opened
 * non-blocking (a FIFO without a writer does not hang the open) and checked on the
 * open handle. A file named by `POST /config` must also lie inside the folder of the
 * cluster's `--config` file (symbolic links resolved), so the admin API cannot be used
 * to read other files of the host.
 */
import { constants } from 'node:fs';
import { open, realpath } from 'node:fs/promises';
import { dirname, relative, resolve, isAbsolute, sep } from 'node:path';
import { ConfigFileError } from './config-file.js';

export const MAX_CONFIG_BYTES = 1 << 20;

function inside(file: string, folder: string): boolean {
  const rel = relative(folder, file);
  return rel !== '' && !rel.startsWith(`..${sep}`) && rel !== '..' && !isAbsolute(rel);
}

/**
 * The text of `path`; with `within` (the `--config` file), only a file inside its
 * folder. Throws ConfigFileError naming the file and why.
 */
export async function readConfigText(path: string, within?: string): Promise<string> {
  const file = resolve(path);
  const folder = within === undefined ? undefined : dirname(resolve(within));
  if (folder !== undefined && !inside(file, folder)) {
    throw new ConfigFileError(`${file}: only files in the folder of the --config file (${folder}) can be loaded`);
  }
  let handle;
  try {
    handle = await open(file, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (e) {
    const reason = (e as NodeJS.ErrnoException).code ?? (e instanceof Error ? e.message : 'unreadable');
    throw new ConfigFileError(`${file}: cannot read "${file}" (${reason})`);
  }
  try {
    const st = await handle.stat();
    if (!st.isFile()) throw new ConfigFileError(`${file}: not a regular file (a configuration file must be one)`);
    if (st.size > MAX_CONFIG_BYTES) throw new ConfigFileError(`${file}: ${st.size} bytes, more than the ${MAX_CONFIG_BYTES} a configuration file may have`);
    if (folder !== undefined && !inside(await realpath(file), await realpath(folder))) {
      throw new ConfigFileError(`${file}: links outside the folder of the --config file (${folder})`);
    }
    // One byte more than allowed: a file that grew since the stat is caught too.
    const buf = Buffer.alloc(MAX_CONFIG_BYTES + 1);
    let n = 0;
    for (;;) {
      const { bytesRead } = await handle.read(buf, n, buf.length - n, n);
      if (bytesRead === 0) break;
      n += bytesRead;
      if (n === buf.length) throw new ConfigFileError(`${file}: more than the ${MAX_CONFIG_BYTES} bytes a configuration file may have`);
    }
    return buf.toString('utf8', 0, n);
  } finally {
    await handle.close();
  }
}
