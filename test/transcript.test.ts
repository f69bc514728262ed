/**
 * Transcript usage equals ccusage 20: the committed fixtures (with ccusage's own
 * output), a generated tree (with the generator's exact expectation), and the
 * reader's edge cases: malformed and torn lines, growth while reading, offsets.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { appendFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { PriceTable } from '../src/transcript/pricing';
import { scanTranscript } from '../src/transcript/reader';
import { buildReport } from '../src/transcript/report';
import { ROOT, runCli, tempHome } from './helpers/cli';

const FIXTURES = join(ROOT, 'test', 'fixtures', 'transcripts');
const GENERATOR = join(ROOT, 'scripts', 'gen-transcripts.mjs');
const scratch = mkdtempSync(join(tmpdir(), 'cm-transcript-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

interface CcusageSession {
  period: string;
  inputTokens: number;
  outputTokens: number;
  cacheCreationTokens: number;
  cacheReadTokens: number;
  totalCost: number;
  modelsUsed: string[];
}

describe.each(['sniffly', 'claude-code-log'])('the %s fixtures equal ccusage 20.0.24', (set) => {
  it('per session and in total: tokens exactly, cost within 0.5%', async () => {
    const expected = JSON.parse(readFileSync(join(FIXTURES, set, 'expected-ccusage.json'), 'utf8')) as { session: CcusageSession[]; totals: { inputTokens: number; outputTokens: number; cacheCreationTokens: number; cacheReadTokens: number; totalCost: number } };
    const home = tempHome();
    const r = await runCli(['usage', '--projects-dir', join(FIXTURES, set, 'projects'), '--json'], { env: home.env });
    home.cleanup();
    expect(r.code).toBe(0);
    const ours = JSON.parse(r.stdout) as { sessions: Array<{ session_id: string; input_tokens: number; output_tokens: number; cache_creation_input_tokens: number; cache_read_input_tokens: number; cost_usd: number; models: string[] }>; totals: Record<string, number> };
    expect(ours.sessions.map((s) => s.session_id).sort()).toEqual(expected.session.map((s) => s.period).sort());
    for (const e of expected.session) {
      const s = ours.sessions.find((x) => x.session_id === e.period)!;
      expect([s.input_tokens, s.output_tokens, s.cache_creation_input_tokens, s.cache_read_input_tokens], e.period).toEqual([e.inputTokens, e.outputTokens, e.cacheCreationTokens, e.cacheReadTokens]);
      expect(Math.abs(s.cost_usd - e.totalCost)).toBeLessThanOrEqual(e.totalCost * 0.005 + 1e-9);
      expect(s.models).toEqual([...e.modelsUsed].sort());
    }
    const t = expected.totals;
    expect([ours.totals.input_tokens, ours.totals.output_tokens, ours.totals.cache_creation_input_tokens, ours.totals.cache_read_input_tokens]).toEqual([t.inputTokens, t.outputTokens, t.cacheCreationTokens, t.cacheReadTokens]);
    expect(Math.abs(ours.totals.cost_usd! - t.totalCost)).toBeLessThanOrEqual(t.totalCost * 0.005);
  });
});

interface Generated {
  stats: Record<string, number>;
  expected: { ccusage20: { totals: Record<string, number>; models: Record<string, Record<string, number>>; session_count: number; sessions: Record<string, Record<string, number> & { models: string[] }> } };
}
const generate = (out: string, seed: number, mb = 2) => JSON.parse(execFileSync(process.execPath, [GENERATOR, '--out', out, '--mb', String(mb), '--seed', String(seed), '--projects', '4'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] })) as Generated;
const TOKEN_KINDS = ['input_tokens', 'output_tokens', 'cache_creation_input_tokens', 'cache_read_input_tokens'] as const;

describe('a generated tree (scripts/gen-transcripts.mjs) equals the generator’s ccusage-20 expectation', () => {
  const out = join(scratch, 'large', 'projects');
  let gen: Generated;
  it('covers every case the reader must get right', () => {
    gen = generate(out, 12);
    for (const k of ['repeat_lines', 'subagent_files', 'meta_files', 'no_request_id_responses', 'no_message_id_lines', 'no_timestamp_lines', 'spaced_lines', 'synthetic_lines']) expect(gen.stats[k], k).toBeGreaterThan(0);
    expect(gen.stats.models).toBeGreaterThanOrEqual(4);
  });

  it('tokens per session and in total, in process and through `usage --json`', async () => {
    const expected = gen.expected.ccusage20;
    const report = buildReport(out, { prices: new PriceTable() });
    const { cost_usd: _cost, ...tokens } = report.totals;
    expect(tokens).toEqual(expected.totals);
    expect(report.unknown_models).toEqual([]);
    const home = tempHome();
    const r = await runCli(['usage', '--projects-dir', out, '--json'], { env: home.env });
    home.cleanup();
    expect(r.code).toBe(0);
    const cli = JSON.parse(r.stdout) as { sessions: Array<Record<string, number> & { session_id: string; models: string[] }> };
    expect(cli.sessions).toHaveLength(expected.session_count);
    for (const s of cli.sessions) {
      const e = expected.sessions[s.session_id]!;
      expect(TOKEN_KINDS.map((k) => s[k]), s.session_id).toEqual(TOKEN_KINDS.map((k) => e[k]));
      expect(s.models).toEqual(e.models);
    }
  });

  it('is the same tree for the same seed, and another for another seed', () => {
    const again = generate(join(scratch, 'again', 'projects'), 12);
    expect(again).toEqual(gen);
    const digest = (dir: string) => {
      const h = createHash('sha256');
      const walk = (d: string): void => {
        for (const e of readdirSync(d, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : 1))) {
          const p = join(d, e.name);
          if (e.isDirectory()) walk(p);
          else h.update(relative(dir, p)).update(readFileSync(p));
        }
      };
      walk(dir);
      return h.digest('hex');
    };
    expect(digest(join(scratch, 'again', 'projects'))).toBe(digest(out));
    expect(generate(join(scratch, 'other', 'projects'), 13, 0.5).expected.ccusage20.totals).not.toEqual(gen.expected.ccusage20.totals);
  });
});

describe('the reader', () => {
  const line = (o: Record<string, unknown>) => JSON.stringify(o);
  const usageLine = (id: string, req: string | null, out: number, extra: Record<string, unknown> = {}) =>
    line({ type: 'assistant', timestamp: '2026-11-20T10:00:00.000Z', requestId: req ?? undefined, sessionId: 's', message: { id, model: 'claude-sonnet-4-5-20250929', usage: { input_tokens: 10, output_tokens: out, cache_creation_input_tokens: 0, cache_read_input_tokens: 0 } }, ...extra });

  it('skips malformed lines (counted), lines without a timestamp, spaced JSON, and non-usage lines', () => {
    const f = join(scratch, 'edge.jsonl');
    writeFileSync(
      f,
      [
        usageLine('m1', 'r1', 5),
        '{"message":{"usage":{"input_tokens":1} broken',
        line({ type: 'assistant', message: { id: 'm2', usage: { input_tokens: 7 } } }), // no timestamp
        JSON.stringify({ type: 'assistant', timestamp: 't', message: { id: 'm3', usage: { input_tokens: 9 } } }, null, 1).replace(/\n/g, ''), // spaced
        line({ type: 'user', message: { content: 'hi' } }),
        '42',
        '',
      ].join('\n'),
    );
    const r = scanTranscript(f);
    expect(r.lines.map((l) => l.messageId)).toEqual(['m1']);
    expect(r.malformed).toBe(1);
  });

  it('keeps the largest of a message’s repeats, and never dedupes lines without message.id', () => {
    const dir = join(scratch, 'dedupe', 'projects', 'p');
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'a.jsonl'), [usageLine('m1', 'r1', 5), usageLine('m1', 'r1', 50), usageLine('m1', 'r1', 20), usageLine('m2', null, 3), usageLine('m2', null, 4)].join('\n') + '\n');
    writeFileSync(join(dir, 'b.jsonl'), [line({ type: 'assistant', timestamp: '2026-11-20T10:00:00Z', message: { model: 'claude-haiku-4-5', usage: { output_tokens: 1 } } }), line({ type: 'assistant', timestamp: '2026-11-20T10:00:00Z', message: { model: 'claude-haiku-4-5', usage: { output_tokens: 1 } } })].join('\n') + '\n');
    const r = buildReport(join(scratch, 'dedupe', 'projects'), { prices: new PriceTable() });
    const a = r.sessions.find((s) => s.session_id === 'a')!;
    expect(a.output_tokens).toBe(50 + 4); // m1's largest; m2 keyed on id alone → its largest
    expect(r.sessions.find((s) => s.session_id === 'b')!.output_tokens).toBe(2); // no id: both count
  });

  it('leaves a torn last line for the next read and resumes from the offset, growing or not', () => {
    const f = join(scratch, 'grow.jsonl');
    const full = usageLine('m9', 'r9', 99);
    writeFileSync(f, `${usageLine('m8', 'r8', 8)}\n${full.slice(0, 40)}`);
    const first = scanTranscript(f, 0, { partialTail: 'skip' });
    expect(first.lines.map((l) => l.messageId)).toEqual(['m8']);
    expect(first.malformed).toBe(0);
    appendFileSync(f, `${full.slice(40)}\n`);
    const second = scanTranscript(f, first.endOffset, { partialTail: 'skip' });
    expect(second.lines.map((l) => [l.messageId, l.tokens.output_tokens])).toEqual([['m9', 99]]);
    expect(second.endOffset).toBe(readFileSync(f).length);
    // and reading in two steps equals one read
    expect([...first.lines, ...second.lines].map((l) => l.offset)).toEqual(scanTranscript(f).lines.map((l) => l.offset));
  });

  it('reads lines longer than its buffer', () => {
    const f = join(scratch, 'long.jsonl');
    writeFileSync(f, `${usageLine('big', 'r', 1, { pad: 'x'.repeat(9 * 1024 * 1024) })}\n${usageLine('after', 'r', 2)}\n`);
    expect(scanTranscript(f).lines.map((l) => l.messageId)).toEqual(['big', 'after']);
  });

  it('a short file read after a long one sees only its own bytes (the read buffer is reused)', () => {
    const long = join(scratch, 'many.jsonl');
    writeFileSync(long, `${Array.from({ length: 2000 }, (_, i) => usageLine(`m${i}`, 'r', i + 1)).join('\n')}\n`);
    const short = join(scratch, 'short.jsonl');
    writeFileSync(short, `${line({ type: 'user', message: { content: 'hi' } })}\n${usageLine('only', 'r', 1)}\n{"type":"user"`);
    expect(scanTranscript(long).lines).toHaveLength(2000);
    const r = scanTranscript(short, 0, { partialTail: 'skip' });
    expect(r.lines.map((l) => l.messageId)).toEqual(['only']);
    expect(r.endOffset).toBe(readFileSync(short).lastIndexOf(10) + 1);
    expect(scanTranscript(join(scratch, 'empty.jsonl')).lines).toEqual([]);
    writeFileSync(join(scratch, 'empty.jsonl'), '');
    expect(scanTranscript(join(scratch, 'empty.jsonl')).lines).toEqual([]);
  });
});

describe('usage command errors', () => {
  it('a bad date or a missing directory: one line, exit 2, no stack', async () => {
    const home = tempHome();
    const bad = await runCli(['usage', '--projects-dir', FIXTURES, '--since', 'last tuesday'], { env: home.env });
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/^claude-metrics: --since: expected a date/);
    const missing = await runCli(['usage'], { env: home.env });
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/no transcripts at .*\.claude\/projects/);
    expect(missing.stderr).not.toMatch(/at .*\.js:\d+/);
    home.cleanup();
  });

  it('filters by date and session', async () => {
    const home = tempHome();
    const r = await runCli(['usage', '--projects-dir', join(FIXTURES, 'sniffly', 'projects'), '--json', '--since', '20250610'], { env: home.env });
    const out = JSON.parse(r.stdout) as { sessions: Array<{ session_id: string }> };
    expect(out.sessions.map((s) => s.session_id)).toEqual(['fed8ce56-bc79-401f-a83e-af084253362f']);
    const one = await runCli(['usage', '--projects-dir', join(FIXTURES, 'sniffly', 'projects'), '--json', '--session', 'ba79134d-b6e9-4867-af0c-6941038c9e4b'], { env: home.env });
    expect((JSON.parse(one.stdout) as { sessions: unknown[] }).sessions).toHaveLength(1);
    home.cleanup();
  });
});

it('the fixtures are in the checkout, with their licence and source note', () => {
  for (const set of ['sniffly', 'claude-code-log']) for (const f of ['LICENSE', 'SOURCE.md', 'expected-ccusage.json', 'projects']) expect(existsSync(join(FIXTURES, set, f)), `${set}/${f}`).toBe(true);
});
