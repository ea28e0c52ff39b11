// Entry of every piscina pool thread (plain JS: it must load before any TS loader).
// Registers tsx when a task module is TypeScript, then calls the task's export.
// A task is { module: file URL, fn: export name, arg }.
const modules = new Map();
let tsxRegistered = false;

async function load(url) {
  let m = modules.get(url);
  if (m === undefined) {
    if (!tsxRegistered && /\.[mc]?ts$/.test(url)) {
      const api = await import('tsx/esm/api');
      api.register();
      tsxRegistered = true;
    }
    m = await import(url);
    modules.set(url, m);
  }
  return m;
}

export default async function runTask({ module, fn, arg }) {
  const m = await load(module);
  const f = m[fn];
  if (typeof f !== 'function') throw new TypeError(`${module} has no function export '${fn}'`);
  return f(arg);
}
