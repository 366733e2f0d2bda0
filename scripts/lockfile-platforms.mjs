#!/usr/bin/env node
/**
 * Adds lock entries for platform-specific optional packages that the registry this lock was made
 * against does not serve (it mirrors only linux-x64 builds of some packages). npm records nothing
 * for an optional dependency it cannot resolve, and `npm ci` then refuses the lock as out of sync.
 * The entries carry the os/cpu/libc constraints read from the package name, so npm skips them on
 * every other platform and never fetches them; on a matching platform they install as usual.
 *
 * Run after `npm install` changes package-lock.json: `node scripts/lockfile-platforms.mjs`.
 */
import { readFileSync, writeFileSync } from 'node:fs';

const file = new URL('../package-lock.json', import.meta.url);
const lock = JSON.parse(readFileSync(file, 'utf8'));
const packages = lock.packages;

function constraints(name) {
  const suffix = name.split('/').pop();
  const match =
    /(android|darwin|freebsd|linux|linuxmusl|openbsd|sunos|win32)-(arm64|arm|ia32|x64|ppc64|s390x|riscv64)(-(gnu|musl|msvc))?$/.exec(
      suffix,
    );
  if (!match) return undefined;
  const os = match[1] === 'linuxmusl' ? 'linux' : match[1];
  const libc = match[1] === 'linuxmusl' || match[4] === 'musl' ? 'musl' : match[4] === 'gnu' ? 'glibc' : undefined;
  return { os: [os], cpu: [match[2]], ...(libc ? { libc: [libc] } : {}) };
}

let added = 0;
for (const [path, entry] of Object.entries(packages)) {
  for (const [dep, range] of Object.entries(entry.optionalDependencies ?? {})) {
    const nested = `${path ? `${path}/` : ''}node_modules/${dep}`;
    if (packages[nested] || packages[`node_modules/${dep}`]) continue;
    const platform = constraints(dep);
    if (!platform || !/^\d+\.\d+\.\d+/.test(range)) continue;
    packages[`node_modules/${dep}`] = { version: range, optional: true, ...platform };
    added++;
  }
}
const sorted = Object.fromEntries(
  Object.entries(packages).sort(([a], [b]) => (a === '' ? -1 : b === '' ? 1 : a.localeCompare(b))),
);
lock.packages = sorted;
writeFileSync(file, `${JSON.stringify(lock, null, 2)}\n`);
console.log(`lockfile-platforms: added ${added} platform entries`);
