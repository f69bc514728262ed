/**
 * `usage` answers from what it already read (src/transcript/usage-cache.ts): a
 * repeated run reads nothing of an unchanged tree, only the new tail of an
 * appended file, all of a rewritten or replaced one, and forgets a deleted one;
 * and through every step the report equals the one read without the cache
 * (which equals ccusage 20: test/transcript.test.ts), as it does on the fixtures.
 */
import { execFileSync } from 'node:child_process';
import { appendFileSync, cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, statSync, truncateSync, unlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PriceTable } from '../src/transcript/pricing';
import { listTranscripts } from '../src/transcript/reader';
import { buildReport, type UsageReport } from '../src/transcript/report';
import { cacheFileFor, CACHE_FORMAT } from '../src/transcript/usage-cache';
import { ROOT, runCli, tempHome } from './helpers/cli';

const FIXTURES = join(ROOT, 'test', 'fixtures', 'transcripts');
const scratch = mkdtempSync(join(tmpdir(), 'cm-usage-cache-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

/**
 * Every file's mtime set to one fixed time an hour back (the cache trusts size and
 * mtime only for files not modified just before they were read); a file untouched
 * since the last call keeps the same mtime.
 */
const AN_HOUR_AGO = Math.floor(Date.now() / 1000) - 3600;
function age(dir: string): void {
  for (const f of listTranscripts(dir)) utimesSync(f.path, AN_HOUR_AGO, AN_HOUR_AGO);
}
/** Every directory's mtime set to `t` (seconds): the cache lists a directory again only when its mtime moves. */
function ageDirs(dir: string, t: number): void {
  for (const e of readdirSync(dir, { withFileTypes: true })) if (e.isDirectory()) ageDirs(join(dir, e.name), t);
  utimesSync(dir, t, t);
}
const prices = new PriceTable();
const fresh = (dir: string) => buildReport(dir, { prices });
const cached = (dir: string, cacheFile: string) => buildReport(dir, { prices, cacheFile });
/** The report without its cache statistics: what `usage` prints. */
const shown = ({ cache: _c, ...r }: UsageReport) => r;

/** The cache's two JSON lines: per-file figures, then the ids. */
const readCache = (file: string): [any, any] => readFileSync(file, 'utf8').trimEnd().split('\n').map((l) => JSON.parse(l)) as [any, any];
const writeCache = (file: string, head: unknown, ids: unknown) => writeFileSync(file, `${JSON.stringify(head)}\n${JSON.stringify(ids)}\n`);

const usageLine = (id: string, req: string | null, out: number, ts = '2026-11-20T10:00:00.000Z') =>
  JSON.stringify({ type: 'assistant', timestamp: ts, sessionId: 's', ...(req ? { requestId: req } : {}), message: { id, model: 'claude-sonnet-4-5', usage: { input_tokens: 3, output_tokens: out, cache_creation_input_tokens: 100, cache_read_input_tokens: 1000 } } });

describe.each(['sniffly', 'claude-code-log'])('the %s fixtures, cold then warm', (set) => {
  it('equal ccusage 20.0.24 both times, and the warm run reads nothing', async () => {
    const dir = join(scratch, set, 'projects');
    cpSync(join(FIXTURES, set, 'projects'), dir, { recursive: true });
    age(dir);
    const expected = JSON.parse(readFileSync(join(FIXTURES, set, 'expected-ccusage.json'), 'utf8')) as { totals: { inputTokens: number; outputTokens: number; cacheCreationTokens: number; cacheReadTokens: number } };
    const t = expected.totals;
    const home = tempHome();
    try {
      const runs = [];
      for (let i = 0; i < 2; i++) runs.push(await runCli(['usage', '--projects-dir', dir, '--json', '--verbose'], { env: home.env }));
      for (const r of runs) {
        expect(r.code, r.stderr).toBe(0);
        const totals = (JSON.parse(r.stdout) as { totals: Record<string, number> }).totals;
        expect([totals.input_tokens, totals.output_tokens, totals.cache_creation_input_tokens, totals.cache_read_input_tokens]).toEqual([t.inputTokens, t.outputTokens, t.cacheCreationTokens, t.cacheReadTokens]);
      }
      expect(runs[1]!.stdout).toBe(runs[0]!.stdout);
      const files = listTranscripts(dir).length;
      expect(runs[0]!.stderr).toMatch(new RegExp(`cache: 0 file\\(s\\) unchanged, 0 appended, ${files} read whole`));
      expect(runs[1]!.stderr).toMatch(new RegExp(`cache: ${files} file\\(s\\) unchanged, 0 appended, 0 read whole, 0 gone; 0 bytes read`));
      // In the state dir, one file per projects directory, readable by its owner only.
      const cacheDir = join(home.stateDir, 'usage-cache');
      const [name] = readdirSync(cacheDir);
      expect(join(cacheDir, name!)).toBe(cacheFileFor(cacheDir, dir));
      expect(statSync(join(cacheDir, name!)).mode & 0o777).toBe(0o600);
      // --no-cache reads every file and leaves the cache as it was.
      const before = readFileSync(join(cacheDir, name!), 'utf8');
      const bypass = await runCli(['usage', '--projects-dir', dir, '--json', '--verbose', '--no-cache'], { env: home.env });
      expect(bypass.code).toBe(0);
      expect(bypass.stdout).toBe(runs[0]!.stdout);
      expect(bypass.stderr).not.toMatch(/cache:/);
      expect(readFileSync(join(cacheDir, name!), 'utf8')).toBe(before);
    } finally {
      home.cleanup();
    }
  });
});

describe('an appended, rewritten, replaced and deleted file, step by step', () => {
  const dir = join(scratch, 'seq', 'projects');
  const cacheFile = join(scratch, 'seq-cache', 'c.json');
  let files: string[];
  /** One step: the cached report equals a fresh read, and the cache did what `expect` says. */
  const step = (want: { unchanged?: number; appended?: number; whole?: number; dropped?: number; bytesRead?: number }) => {
    const r = cached(dir, cacheFile);
    expect(shown(r)).toEqual(shown(fresh(dir)));
    for (const [k, v] of Object.entries(want)) expect(r.cache![k as keyof typeof want], k).toBe(v);
    return r;
  };

  beforeAll(() => {
    execFileSync(process.execPath, [join(ROOT, 'scripts/gen-transcripts.mjs'), '--out', dir, '--mb', '2', '--seed', '5', '--projects', '3'], { stdio: 'ignore' });
    age(dir);
    files = listTranscripts(dir).map((f) => f.path);
  });

  it('cold: every file read whole; warm: none read', () => {
    const n = files.length;
    expect(n).toBeGreaterThan(7);
    step({ unchanged: 0, appended: 0, whole: n, dropped: 0 });
    step({ unchanged: n, appended: 0, whole: 0, dropped: 0, bytesRead: 0 });
  });

  it('an append is read from the old end only: a larger repeat replaces its message, a new message and an unkeyed line add up', () => {
    const f = files[1]!;
    const sizeBefore = statSync(f).size;
    expect(readFileSync(f, 'utf8').endsWith('\n')).toBe(true);
    const added = [usageLine('msg_app_1', 'req_app_1', 10), usageLine('msg_app_1', 'req_app_1', 500), usageLine('msg_app_2', null, 42), JSON.stringify({ timestamp: '2026-11-20T10:05:00.000Z', message: { model: 'claude-sonnet-4-5', usage: { input_tokens: 7, output_tokens: 7 } } })].join('\n') + '\n';
    appendFileSync(f, added);
    age(dir);
    step({ appended: 1, whole: 0, bytesRead: Buffer.byteLength(added) });
    expect(statSync(f).size).toBe(sizeBefore + Buffer.byteLength(added));
    step({ unchanged: files.length, bytesRead: 0 });
  });

  it('a torn last line is counted when whole JSON, left out when not, and read again once it grows', () => {
    const f = files[2]!;
    appendFileSync(f, usageLine('msg_torn_1', 'req_torn_1', 77)); // whole JSON, no newline: ccusage counts it
    age(dir);
    step({ appended: 1 });
    const half = usageLine('msg_torn_2', 'req_torn_2', 88);
    appendFileSync(f, `\n${half.slice(0, 40)}`); // a write cut short: not counted, not malformed
    age(dir);
    const r = step({ appended: 1 });
    expect(r.malformed_lines).toBe(fresh(dir).malformed_lines);
    appendFileSync(f, `${half.slice(40)}\n${usageLine('msg_torn_1', 'req_torn_1', 99)}\n`); // the torn line completes; a larger repeat of the first
    age(dir);
    step({ appended: 1 });
  });

  it('a file rewritten (its last bytes changed, then grown) is read whole, as is one that shrank or kept its size', () => {
    const f = files[3]!;
    const text = readFileSync(f, 'utf8');
    const lines = text.trimEnd().split('\n');
    lines[lines.length - 1] = usageLine('msg_rw_0', 'req_rw_0', 1234); // its last line rewritten
    writeFileSync(f, `${lines.join('\n')}\n${usageLine('msg_rw_1', 'req_rw_1', 5)}\n`);
    age(dir);
    step({ appended: 0, whole: 1 });

    truncateSync(f, Math.floor(statSync(f).size / 2)); // shrank
    age(dir);
    step({ appended: 0, whole: 1 });

    const same = readFileSync(f, 'utf8').replace(/"input_tokens":(\d)/, '"input_tokens":9');
    writeFileSync(f, same); // same size, other bytes, another mtime
    utimesSync(f, AN_HOUR_AGO + 60, AN_HOUR_AGO + 60);
    step({ appended: 0, whole: 1 });
    age(dir); // back to the common mtime: one more read
    step({ appended: 0, whole: 1 });
  });

  it('a file replaced by another (a new inode, through a rename) is read whole', () => {
    const f = files[4]!;
    const copy = `${f}.new`;
    writeFileSync(copy, readFileSync(f, 'utf8') + `${usageLine('msg_mv_1', 'req_mv_1', 6)}\n`);
    renameSync(copy, f);
    age(dir);
    step({ appended: 0, whole: 1 });
  });

  it('a new transcript is found, in a directory listed before and in a new one', () => {
    age(dir);
    ageDirs(dir, AN_HOUR_AGO);
    step({});
    step({ unchanged: files.length, bytesRead: 0 }); // every directory stat'ed, none read
    const project = join(files[0]!, '..');
    const added = join(project, 'new-session.jsonl');
    writeFileSync(added, `${usageLine('msg_new_1', 'req_new_1', 21)}\n`);
    age(dir);
    ageDirs(dir, AN_HOUR_AGO + 60); // its directory's mtime moved (old enough to trust)
    step({ whole: 1, unchanged: files.length });
    step({ unchanged: files.length + 1, bytesRead: 0 });
    mkdirSync(join(project, 'new-session', 'subagents'), { recursive: true });
    writeFileSync(join(project, 'new-session', 'subagents', 'agent-x.jsonl'), `${usageLine('msg_new_2', 'req_new_2', 22)}\n`);
    step({ whole: 1, unchanged: files.length + 1 });
    rmSync(join(project, 'new-session'), { recursive: true });
    unlinkSync(added);
    step({ dropped: 2, whole: 0 });
  });

  it('a deleted file drops out of the report and of the cache', () => {
    unlinkSync(files[5]!);
    step({ dropped: 1, whole: 0, appended: 0 });
    expect(JSON.stringify(readCache(cacheFile))).not.toContain(files[5]!.slice(dir.length + 1));
    step({ dropped: 0, bytesRead: 0 });
  });

  it('a file changed in the same mtime tick it was read in is read again, not trusted on size and mtime', () => {
    const f = files[0]!;
    const st = statSync(f);
    const changed = readFileSync(f, 'utf8').replace(/"cache_read_input_tokens":(\d)/, '"cache_read_input_tokens":8');
    writeFileSync(f, changed);
    utimesSync(f, st.atime, new Date()); // modified now: the next read is "racy"
    const mtime = statSync(f).mtime;
    step({ whole: 1 });
    // Changed again, same size, same mtime (a write in the same tick): size and mtime alone would miss it.
    writeFileSync(f, changed.replace(/"cache_read_input_tokens":(\d)/, '"cache_read_input_tokens":7'));
    utimesSync(f, st.atime, mtime);
    step({ whole: 1 });
  });

  it('a message in two files (a resumed session) goes to the larger repeat, whichever file is cached and whichever is new', () => {
    const a = files[files.length - 2]!;
    const b = files[files.length - 1]!;
    appendFileSync(a, `${usageLine('msg_two_1', 'req_two_1', 50)}\n${usageLine('msg_two_2', 'req_two_2', 70)}\n`);
    age(dir);
    step({ appended: 1 }); // both keys in one file only so far
    step({ unchanged: files.length - 1 });
    appendFileSync(b, `${usageLine('msg_two_1', 'req_two_1', 90)}\n${usageLine('msg_two_2', 'req_two_2', 70)}\n`); // larger; a tie (the first file keeps it)
    age(dir);
    step({ appended: 1 });
    step({ unchanged: files.length - 1, bytesRead: 0 });
    const moved = `${b}.moved`; // b gone: the keys are back to a's lines alone
    renameSync(b, moved);
    step({ dropped: 1 });
    renameSync(moved, b);
    step({ whole: 1 });
  });

  it('a corrupt cache, or one from another version, is ignored and rebuilt', () => {
    age(dir);
    ageDirs(dir, AN_HOUR_AGO + 120);
    step({});
    writeFileSync(cacheFile, '{"format":1,"app":"0.1.0","files":{"x":');
    let r = step({ whole: files.length - 1 });
    expect(r.cache!.ignored).toMatch(/corrupt/);
    const [head, ids] = readCache(cacheFile);
    writeCache(cacheFile, { ...head, format: CACHE_FORMAT + 1 }, ids);
    r = step({ whole: files.length - 1 });
    expect(r.cache!.ignored).toMatch(/another version/);
    // A damaged entry (valid JSON, wrong columns) costs that file a read, nothing else.
    const [good, goodIds] = readCache(cacheFile);
    const rel = Object.keys(good.files)[0]!;
    good.files[rel].n = good.files[rel].n.slice(1);
    writeCache(cacheFile, good, goodIds);
    step({ whole: 1, unchanged: files.length - 2 });
    // Damaged ids: an unchanged tree does not need them; a run that does reads every file.
    const [h2] = readCache(cacheFile);
    writeFileSync(cacheFile, `${JSON.stringify(h2)}\n{"broken":`);
    step({ unchanged: files.length - 1, bytesRead: 0 });
    appendFileSync(files[1]!, `${usageLine('msg_ids_1', 'req_ids_1', 12)}\n`);
    age(dir);
    r = step({ whole: files.length - 1 });
    expect(r.cache!.ignored).toMatch(/corrupt \(ids\)/);
    step({ unchanged: files.length - 1, bytesRead: 0 });
  });

  it('a cache that cannot be written costs speed, not the answer', () => {
    const blocker = join(scratch, 'not-a-dir');
    writeFileSync(blocker, 'a file where the cache directory would be');
    const r = cached(dir, join(blocker, 'usage-cache', 'c.json'));
    expect(r.cache!.writeFailed).toBe(true);
    expect(shown(r)).toEqual(shown(fresh(dir)));
  });

  it('concurrent `usage` runs all answer right and leave a whole cache', async () => {
    const home = tempHome();
    try {
      appendFileSync(files[1]!, `${usageLine('msg_conc_1', 'req_conc_1', 11)}\n`);
      age(dir);
      const expected = shown(fresh(dir)).totals;
      const runs = await Promise.all(Array.from({ length: 4 }, () => runCli(['usage', '--projects-dir', dir, '--json'], { env: home.env })));
      for (const r of runs) {
        expect(r.code, r.stderr).toBe(0);
        const t = (JSON.parse(r.stdout) as { totals: Record<string, number> }).totals;
        expect(t.output_tokens).toBe(expected.output_tokens);
        expect(t.input_tokens).toBe(expected.input_tokens);
      }
      const cacheDir = join(home.stateDir, 'usage-cache');
      expect(readdirSync(cacheDir).filter((n) => n.endsWith('.tmp'))).toEqual([]);
      const file = cacheFileFor(cacheDir, dir);
      expect(existsSync(file)).toBe(true);
      expect(() => readCache(file)).not.toThrow();
      const again = await runCli(['usage', '--projects-dir', dir, '--json', '--verbose'], { env: home.env });
      expect(again.stderr).toMatch(/0 read whole, 0 gone; 0 bytes read/);
      expect(again.stdout).toBe(runs[0]!.stdout);
    } finally {
      home.cleanup();
    }
  });
});
