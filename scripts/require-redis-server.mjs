// `npm run test:e2e` starts here: the end-to-end tier runs against a real redis-server, so without
// one it says so plainly and stops before vitest starts anything.
import { spawnSync } from 'node:child_process';

const probe = spawnSync('redis-server', ['--version'], { encoding: 'utf8' });
if (probe.error || probe.status !== 0) {
  process.stderr.write(
    'test:e2e needs redis-server on the PATH and found none: the end-to-end tests run against a real Redis.\n' +
      'Install the "redis-server" package (Debian/Ubuntu: apt-get install -y redis-server; macOS: brew install redis),\n' +
      'or run the fast tier alone with `npm test`.\n',
  );
  process.exit(1);
}
