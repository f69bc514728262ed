import { describe, expect, it } from 'vitest';
import { IngestActivity } from '../../src/collector/ingest-activity';

describe('IngestActivity (the retention sweep waits for ingest to be idle)', () => {
  it('is idle at once when nothing is queued', async () => {
    const a = new IngestActivity();
    expect(a.idle).toBe(true);
    let woke = false;
    await a.whenIdle(10_000).then(() => (woke = true));
    expect(woke).toBe(true);
  });

  it('wakes when the last batch in flight is committed, not before', async () => {
    const a = new IngestActivity();
    a.begin();
    a.begin();
    let woke = false;
    const waiting = a.whenIdle(10_000).then(() => (woke = true));
    a.end();
    await new Promise((r) => setImmediate(r));
    expect(woke).toBe(false); // one batch still in flight
    a.end();
    await waiting;
    expect(woke).toBe(true);
    expect(a.idle).toBe(true);
  });

  it('gives up waiting after maxWaitMs, so a collector never idle still sweeps', async () => {
    const a = new IngestActivity();
    a.begin();
    const t0 = performance.now();
    await a.whenIdle(30);
    expect(performance.now() - t0).toBeGreaterThanOrEqual(25);
    expect(a.idle).toBe(false);
  });

  it('an end without a begin does not go below idle', () => {
    const a = new IngestActivity();
    a.end();
    a.begin();
    expect(a.idle).toBe(false);
    a.end();
    expect(a.idle).toBe(true);
  });
});
