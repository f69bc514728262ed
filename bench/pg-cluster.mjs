// A throw-away PostgreSQL cluster for benchmarks (the JS twin of
// test/helpers/postgres.ts): Debian's server binaries, initdb into a temp dir,
// a free 127.0.0.1 port, trust auth for one local user, removed at stop. Unlike
// the tests it keeps PostgreSQL's durability settings (fsync on, synchronous
// commit), so the figures include the WAL flush every acknowledged batch waits for.
import { spawn } from 'node:child_process';
import { chownSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const BIN = process.env.CLAUDE_METRICS_TEST_PG_BIN ?? '/usr/lib/postgresql/15/bin';

function run(cmd, args, cwd) {
  const asRoot = process.getuid?.() === 0;
  const [c, a] = asRoot ? ['runuser', ['-u', 'postgres', '--', cmd, ...args]] : [cmd, args];
  return new Promise((resolve, reject) => {
    const child = spawn(c, a, { cwd, stdio: ['ignore', 'pipe', 'pipe'], env: { PATH: process.env.PATH, LANG: 'C.UTF-8', LC_ALL: 'C.UTF-8' } });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve(out) : reject(new Error(`${cmd} exited ${code}: ${out}`))));
  });
}

const freePort = () =>
  new Promise((resolve) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });

export async function startPostgres() {
  const dir = mkdtempSync(join(tmpdir(), 'cm-bench-pg-'));
  if (process.getuid?.() === 0) chownSync(dir, Number((await run('id', ['-u'], dir)).trim()), Number((await run('id', ['-g'], dir)).trim()));
  const data = join(dir, 'data');
  await run(join(BIN, 'initdb'), ['-D', data, '-U', 'cm', '-A', 'trust', '-E', 'UTF8', '--locale=C.UTF-8', '--no-instructions'], dir);
  const port = await freePort();
  const opts = `-p ${port} -c listen_addresses=127.0.0.1 -c unix_socket_directories=${dir} -c max_connections=100 -c shared_buffers=128MB`;
  await run(join(BIN, 'pg_ctl'), ['-D', data, '-l', join(dir, 'server.log'), '-o', opts, '-w', 'start'], dir);
  let n = 0;
  const url = (db) => `postgres://cm@127.0.0.1:${port}/${db}`;
  return {
    url,
    async createDb() {
      const name = `bench_${++n}`;
      await run(join(BIN, 'psql'), ['-h', '127.0.0.1', '-p', String(port), '-U', 'cm', '-d', 'postgres', '-qc', `CREATE DATABASE ${name}`], dir);
      return url(name);
    },
    /** One statement's result as text (psql -tA), e.g. pg_database_size for a benchmark's bytes per event. */
    async sql(db, text) {
      const name = new URL(db).pathname.slice(1);
      return (await run(join(BIN, 'psql'), ['-h', '127.0.0.1', '-p', String(port), '-U', 'cm', '-d', name, '-tAqc', text], dir)).trim();
    },
    async stop() {
      await run(join(BIN, 'pg_ctl'), ['-D', data, '-m', 'immediate', 'stop'], dir).catch(() => undefined);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
