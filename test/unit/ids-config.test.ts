import { describe, expect, it } from 'vitest';
import { resolveConfig } from '../../src/config';
import { canonicalJson, deterministicId, usageEventId, uuidv7 } from '../../src/ids';
import { uuidv7Time } from '../../src/spool/spool';

describe('ids', () => {
  it('uuidv7 encodes its birth time and sorts by it', () => {
    const a = uuidv7(1_700_000_000_000);
    const b = uuidv7(1_700_000_000_001);
    expect(a).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(uuidv7Time(a)).toBe(1_700_000_000_000);
    expect(a < b).toBe(true);
    expect(uuidv7(5)).not.toBe(uuidv7(5));
  });
  it('deterministic ids are stable and keyed on every part', () => {
    expect(usageEventId('s', 'msg_1', 'req_1')).toBe(usageEventId('s', 'msg_1', 'req_1'));
    expect(usageEventId('s', 'msg_1', 'req_1')).not.toBe(usageEventId('s', 'msg_1', 'req_2'));
    // length-prefixing: moving a character between parts changes the id
    expect(deterministicId('ab', 'c')).not.toBe(deterministicId('a', 'bc'));
  });
  it('canonical JSON ignores key order', () => {
    expect(canonicalJson({ b: 1, a: [{ d: 2, c: 3 }] })).toBe(canonicalJson({ a: [{ c: 3, d: 2 }], b: 1 }));
  });
});

describe('resolveConfig', () => {
  const noFile = '/nonexistent/config.json';
  it('flag > env > default, with origins', () => {
    const r = resolveConfig({ configFile: noFile, checkStateDir: false, env: { HOME: '/h', CLAUDE_METRICS_TIMEOUT_MS: '500' }, flags: { endpoint: 'http://x:1/m' } });
    expect(r.config.endpoint).toBe('http://x:1/m');
    expect(r.origins.endpoint).toBe('flag');
    expect(r.config.timeoutMs).toBe(500);
    expect(r.origins.timeoutMs).toBe('env');
    expect(r.config.stateDir).toBe('/h/.local/state/claude-metrics');
    expect(r.origins.batchSize).toBe('default');
  });
  it('reads the Ralph loop variable METRICS_ENDPOINT after ours', () => {
    expect(resolveConfig({ configFile: noFile, env: { METRICS_ENDPOINT: 'http://r:2/metrics/harness' } }).config.endpoint).toBe('http://r:2/metrics/harness');
    const both = resolveConfig({ configFile: noFile, env: { METRICS_ENDPOINT: 'http://r:2/a', CLAUDE_METRICS_ENDPOINT: 'http://c:3/b' } });
    expect(both.config.endpoint).toBe('http://c:3/b');
    expect(both.envNames.endpoint).toBe('CLAUDE_METRICS_ENDPOINT');
  });
  it('a bad env value warns and falls back; a bad flag is an error', () => {
    const r = resolveConfig({ configFile: noFile, env: { CLAUDE_METRICS_TIMEOUT_MS: 'fast', CLAUDE_METRICS_ENDPOINT: 'ftp://x' }, flags: { batchSize: 0 } });
    expect(r.config.timeoutMs).toBe(300);
    expect(r.config.endpoint).toBe('http://127.0.0.1:8013/metrics/harness');
    expect(r.warnings.join('\n')).toMatch(/CLAUDE_METRICS_TIMEOUT_MS/);
    expect(r.warnings.join('\n')).toMatch(/CLAUDE_METRICS_ENDPOINT/);
    expect(r.errors.join('\n')).toMatch(/--batch-size: must be at least 1/);
  });
});

describe('the collector database setting', () => {
  it('comes from flag, env or file, and doctor never prints its password', async () => {
    const { configRows } = await import('../../src/install/doctor');
    const r = resolveConfig({ env: { CLAUDE_METRICS_DB: 'postgres://cm:s3cret@db.internal:5432/metrics', CLAUDE_METRICS_DB_POOL_SIZE: '4' }, configFile: '/nonexistent' });
    expect(r.config.db).toBe('postgres://cm:s3cret@db.internal:5432/metrics');
    expect(r.config.dbPoolSize).toBe(4);
    const row = configRows(r).find((x) => x.key === 'db')!;
    expect(row).toMatchObject({ value: 'postgres://cm:***@db.internal:5432/metrics', origin: 'env', from: 'CLAUDE_METRICS_DB' });
    expect(JSON.stringify(configRows(r))).not.toContain('s3cret');
    expect(resolveConfig({ env: { CLAUDE_METRICS_DB_POOL_SIZE: '0' }, configFile: '/nonexistent' }).warnings.join()).toMatch(/CLAUDE_METRICS_DB_POOL_SIZE: must be at least 1/);
    expect(resolveConfig({ flags: { db: '/var/lib/cm/c.db' }, configFile: '/nonexistent' }).config.db).toBe('/var/lib/cm/c.db');
  });
});
