/**
 * Whatever arrives on stdin, `emit` exits 0, prints nothing to stdout, finishes,
 * and never loses what is already in the spool.
 */
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { deadPort, runCli, tempHome, type TempHome } from './helpers/cli';

const deep = (n: number) => '['.repeat(n) + ']'.repeat(n);
const valid = JSON.stringify({ hook_event_name: 'PostToolUse', session_id: 's', tool_name: 'Bash', tool_use_id: 't1', cwd: '/tmp' });

const CORPUS: Array<[string, string | Buffer]> = [
  ['empty', ''],
  ['whitespace', '  \n\t '],
  ['not JSON', 'hello world'],
  ['truncated JSON', valid.slice(0, 40)],
  ['JSON array', '[1,2,3]'],
  ['JSON string', '"PostToolUse"'],
  ['JSON null', 'null'],
  ['binary', Buffer.from(Array.from({ length: 4096 }, (_, i) => (i * 37) % 256))],
  ['NUL bytes', Buffer.concat([Buffer.from('{"hook_event_name":"Stop"'), Buffer.alloc(64), Buffer.from('}')])],
  ['NUL inside a string', '{"hook_event_name":"Stop\\u0000x","session_id":"a\\u0000b"}'],
  ['deep nesting', deep(200_000)],
  ['deeply nested tool_input', `{"hook_event_name":"PostToolUse","tool_input":${deep(50_000)}}`],
  ['wrong types', JSON.stringify({ hook_event_name: 42, session_id: { a: 1 }, tool_name: ['x'], cwd: 7, tool_use_id: null, duration_ms: 'slow', permission_mode: false })],
  ['huge string', JSON.stringify({ hook_event_name: 'UserPromptSubmit', session_id: 's', prompt: 'x'.repeat(5_000_000) })],
  ['10 MB tool_response', JSON.stringify({ hook_event_name: 'PostToolUse', session_id: 's', tool_name: 'Read', tool_response: { content: 'y'.repeat(10 * 1024 * 1024) } })],
  ['20 MB, past the read cap', JSON.stringify({ hook_event_name: 'PostToolUse', session_id: 's', tool_name: 'Read', tool_use_id: 'big', tool_response: { content: 'z'.repeat(20 * 1024 * 1024) } })],
  ['invalid UTF-8', Buffer.from([0x7b, 0x22, 0x61, 0x22, 0x3a, 0x22, 0xff, 0xfe, 0x22, 0x7d])],
  ['lone surrogate', '{"hook_event_name":"Stop","session_id":"\\ud800"}'],
  ['prototype pollution', '{"hook_event_name":"Stop","__proto__":{"polluted":true},"constructor":{"prototype":{"x":1}}}'],
  ['unknown event with odd keys', '{"hook_event_name":"","":1,"a.b":2}'],
];

let home: TempHome;
let env: Record<string, string>;

beforeAll(async () => {
  home = tempHome();
  env = { ...home.env, CLAUDE_METRICS_ENDPOINT: `http://127.0.0.1:${await deadPort()}/metrics/harness`, CLAUDE_METRICS_SELF: '/bin/true' };
  // Something already spooled that no bad input may disturb.
  for (let i = 0; i < 3; i++) expect((await runCli(['emit', '--event', `kept-${i}`], { env })).code).toBe(0);
});
afterAll(() => home.cleanup());

const spoolNew = () => {
  const dir = join(home.stateDir, 'spool', 'new');
  return existsSync(dir) ? readdirSync(dir) : [];
};

describe('emit survives any stdin', () => {
  it.each(CORPUS)('%s: exit 0, empty stdout, spool intact', async (_name, input) => {
    const before = new Set(spoolNew());
    const r = await runCli(['emit'], { env, input });
    expect(r.code).toBe(0);
    expect(r.signal).toBeNull();
    expect(r.stdout).toBe('');
    expect(r.stderr).toBe(''); // quiet without --verbose: trouble goes to the log file
    const after = new Set(spoolNew());
    for (const f of before) expect(after.has(f)).toBe(true);
  });

  it('records the hook even when the payload is past the read cap', async () => {
    const files = spoolNew();
    const { readFileSync } = await import('node:fs');
    const bodies = files.map((f) => readFileSync(join(home.stateDir, 'spool', 'new', f), 'utf8'));
    // Cut by the size cap or by the read deadline (the writer is slower than the deadline): either way salvaged.
    expect(bodies.some((b) => b.includes('"tool_use_id":"big"') && /"input_(truncated|timed_out)":true/.test(b))).toBe(true);
    // and the 10 MB payload went as metadata: its size, not its text
    expect(bodies.some((b) => b.includes('"tool_response_size":'))).toBe(true);
    for (const b of bodies) expect(b.length).toBeLessThan(10_000);
  });

  it('logs its own trouble to the log file', async () => {
    const { readFileSync } = await import('node:fs');
    const log = readFileSync(join(home.stateDir, 'claude-metrics.log'), 'utf8');
    expect(log).toMatch(/not a hook JSON object/);
    for (const line of log.trim().split('\n')) expect(() => JSON.parse(line)).not.toThrow();
  });

  it('an unknown flag or a bad value is ignored, not fatal', async () => {
    const r = await runCli(['emit', '--event', 'x', '--bogus', '--duration-ms', 'fast', '--success', 'maybe', 'stray'], { env });
    expect(r.code).toBe(0);
    expect(r.stdout).toBe('');
  });

  it('a stdin that never closes is bounded by the deadline', async () => {
    const r = await runCli(['emit'], { env: { ...env, CLAUDE_METRICS_TIMEOUT_MS: '300' }, stdinOpen: true, killAfterMs: 10_000 });
    expect(r.signal).toBeNull();
    expect(r.code).toBe(0);
  });

  it('an unwritable state dir still exits 0 quietly', async () => {
    // A state dir under a regular file: every mkdir fails with ENOTDIR.
    const { writeFileSync } = await import('node:fs');
    writeFileSync(join(home.home, 'a-file'), '');
    const r = await runCli(['emit', '--event', 'x'], { env: { ...env, CLAUDE_METRICS_STATE_DIR: join(home.home, 'a-file', 'state') } });
    expect(r.code).toBe(0);
    expect(r.stdout).toBe('');
  });
});
