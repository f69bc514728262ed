/**
 * A throw-away PostgreSQL cluster for the tests: Debian's server binaries
 * (package postgresql-15, installed by scripts/test.sh), `initdb` into a temp
 * directory, listening on a free 127.0.0.1 port only, trust auth for the one
 * local user, removed at stop. As root the server runs as the `postgres` user
 * (PostgreSQL refuses to run as root) through `runuser`.
 */
import { spawn } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client } from 'pg';
import { deadPort } from './cli';

export const PG_BIN = process.env.CLAUDE_METRICS_TEST_PG_BIN ?? '/usr/lib/postgresql/15/bin';
const USER = 'cm';

export interface PgCluster {
  port: number;
  /** postgres://cm@127.0.0.1:PORT/<db> */
  url(db?: string): string;
  /** A new empty database; returns its URL. */
  createDb(name?: string): Promise<string>;
  /** One statement against a database (for assertions a test cannot make through the collector). */
  query<R = Record<string, unknown>>(db: string, sql: string, params?: unknown[]): Promise<R[]>;
  /** Stops the server (fast shutdown: sessions are disconnected), keeping the data. */
  stopServer(): Promise<void>;
  startServer(): Promise<void>;
  /** Stops the server and removes the cluster. */
  stop(): Promise<void>;
  log(): string;
}

function run(cmd: string, args: string[], cwd: string): Promise<string> {
  const asRoot = process.getuid?.() === 0;
  const [c, a] = asRoot ? ['runuser', ['-u', 'postgres', '--', cmd, ...args]] : [cmd, args];
  return new Promise((resolve, reject) => {
    const child = spawn(c, a, { cwd, stdio: ['ignore', 'pipe', 'pipe'], env: { PATH: process.env.PATH ?? '/usr/bin:/bin', LANG: 'C.UTF-8', LC_ALL: 'C.UTF-8' } });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve(out) : reject(new Error(`${cmd} ${args.join(' ')} exited ${code}: ${out}`))));
  });
}

let counter = 0;

/** initdb + pg_ctl start on a free loopback port. `fsync=off`: the tests kill collectors, never the machine. */
export async function startPostgres(): Promise<PgCluster> {
  if (!existsSync(join(PG_BIN, 'initdb'))) throw new Error(`PostgreSQL server binaries not found in ${PG_BIN}: install Debian's postgresql-15 (scripts/test.sh does)`);
  const dir = mkdtempSync(join(tmpdir(), 'cm-pg-'));
  if (process.getuid?.() === 0) {
    const uid = Number((await run('id', ['-u'], dir)).trim());
    const gid = Number((await run('id', ['-g'], dir)).trim());
    chownSync(dir, uid, gid);
  }
  const data = join(dir, 'data');
  await run(join(PG_BIN, 'initdb'), ['-D', data, '-U', USER, '-A', 'trust', '-E', 'UTF8', '--locale=C.UTF-8', '--no-sync', '--no-instructions'], dir);
  const port = await deadPort();
  const opts = [`-p ${port}`, '-c listen_addresses=127.0.0.1', `-c unix_socket_directories=${dir}`, '-c fsync=off', '-c max_connections=200', '-c shared_buffers=64MB'].join(' ');
  const logFile = join(dir, 'server.log');
  const startServer = async () => {
    await run(join(PG_BIN, 'pg_ctl'), ['-D', data, '-l', logFile, '-o', opts, '-w', '-t', '60', 'start'], dir);
  };
  const stopServer = async () => {
    await run(join(PG_BIN, 'pg_ctl'), ['-D', data, '-m', 'fast', '-w', '-t', '60', 'stop'], dir);
  };
  await startServer();
  const url = (db = 'postgres') => `postgres://${USER}@127.0.0.1:${port}/${db}`;
  const query = async <R>(db: string, sql: string, params: unknown[] = []): Promise<R[]> => {
    const c = new Client({ connectionString: url(db) });
    await c.connect();
    try {
      return (await c.query(sql, params)).rows as R[];
    } finally {
      await c.end();
    }
  };
  return {
    port,
    url,
    query,
    async createDb(name = `t${process.pid}_${++counter}`) {
      await query('postgres', `CREATE DATABASE "${name}"`);
      return url(name);
    },
    stopServer,
    startServer,
    async stop() {
      await run(join(PG_BIN, 'pg_ctl'), ['-D', data, '-m', 'immediate', '-w', 'stop'], dir).catch(() => undefined);
      rmSync(dir, { recursive: true, force: true });
    },
    log: () => {
      try {
        return readFileSync(logFile, 'utf8');
      } catch {
        return '';
      }
    },
  };
}
