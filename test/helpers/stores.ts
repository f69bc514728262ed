/**
 * Running a suite on both stores: `describe.each(STORES)('… on %s', (backend) => { const store = useStore(backend); … })`.
 * SQLite: a new file in the test's temp home. PostgreSQL: one throw-away cluster per suite
 * (helpers/postgres.ts), a new empty database per call.
 */
import { join } from 'node:path';
import { afterAll, beforeAll } from 'vitest';
import type { TempHome } from './cli';
import { startPostgres, type PgCluster } from './postgres';

export const STORES = ['sqlite', 'postgres'] as const;
export type Backend = (typeof STORES)[number];

export function useStore(backend: Backend) {
  let pg: PgCluster | undefined;
  let n = 0;
  beforeAll(async () => {
    if (backend === 'postgres') pg = await startPostgres();
  }, 120_000);
  afterAll(async () => {
    await pg?.stop();
  });
  return {
    backend,
    /** A new empty database for `serve --db`. */
    fresh: async (home: TempHome): Promise<string> => (backend === 'sqlite' ? join(home.home, `collector-${++n}.db`) : pg!.createDb()),
    get pg(): PgCluster | undefined {
      return pg;
    },
  };
}
