/**
 * The pure settings edits: golden outputs for settings files in many shapes,
 * idempotence, install→uninstall giving back the original bytes, and the
 * recognition of our hook commands (a table). No I/O except reading fixtures.
 */
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { unifiedDiff } from '../src/install/diff';
import { hookCommandFor, isOurHookCommand, shellQuote, splitHookCommand } from '../src/install/hook-command';
import { DEFAULT_EVENTS, detectFormatting, findOurHooks, planInstall, planUninstall, SettingsError } from '../src/install/settings-edit';

const FIX = join(__dirname, 'fixtures', 'settings');
const GOLD = join(FIX, 'golden');
const COMMAND = hookCommandFor({ kind: 'node', node: '/usr/bin/node', bin: '/opt/claude metrics/bin/claude-metrics' });
const SPEC = { command: COMMAND, events: DEFAULT_EVENTS, timeoutS: 5, async: false };

const VALID = ['empty', 'braces', 'comments', 'tabs', 'crlf-four-spaces', 'no-trailing-newline', 'unrelated-hooks', 'older-version'];

function golden(name: string, text: string): string {
  const path = join(GOLD, name);
  if (process.env.UPDATE_GOLDEN === '1' || !existsSync(path)) writeFileSync(path, text);
  return readFileSync(path, 'utf8');
}

describe('isOurHookCommand', () => {
  const table: Array<[string, boolean]> = [
    [COMMAND, true],
    ["'/usr/bin/node' '/repo/bin/claude-metrics' emit", true],
    ['"/usr/bin/node" "/repo/bin/claude-metrics" emit', true],
    ['claude-metrics emit', true],
    ['/home/u/.local/bin/claude-metrics emit', true],
    ['/home/u/.local/bin/claude-metrics emit --source interactive', true],
    ['npx claude-metrics emit', true],
    ['npx -y claude-metrics@0.1.0 emit', true],
    ['/opt/claude-metrics.exe emit', true],
    ['node /opt/claude-metrics/dist/cli.cjs emit', true],
    ['node /srv/claude-metrics-main/dist/cli.js emit', true],
    ['node /anywhere/dist/emit.cjs', true],
    ['claude-metrics -v emit', true],
    ['claude-metrics flush', false],
    ['claude-metrics', false],
    ['/usr/bin/claude-metrics serve --port 1 emit', false],
    ['my-claude-metrics-wrapper emit', false],
    ['claude-metricsx emit', false],
    ['node /opt/other/dist/cli.cjs emit', false],
    ['npx prettier --write "$CLAUDE_FILE"', false],
    ['echo emit', false],
    ['', false],
  ];
  it.each(table)('%s → %s', (cmd, want) => {
    expect(isOurHookCommand(cmd)).toBe(want);
  });
  it('rejects non-strings', () => {
    expect(isOurHookCommand(undefined)).toBe(false);
    expect(isOurHookCommand(42)).toBe(false);
  });
});

describe('shell quoting', () => {
  it('leaves safe words bare and quotes the rest so a shell reads them back', () => {
    expect(shellQuote('/usr/bin/node')).toBe('/usr/bin/node');
    expect(shellQuote("/it's here/x")).toBe(`'/it'\\''s here/x'`);
    for (const w of ['/a b/c', "/x'y", '/$HOME/`id`', '/tab\there', '']) expect(splitHookCommand(`${shellQuote(w)} emit`)).toEqual([w, 'emit']);
  });
  it('the command is absolute and never npx', () => {
    expect(COMMAND).toBe(`/usr/bin/node '/opt/claude metrics/bin/claude-metrics' emit`);
    expect(hookCommandFor({ kind: 'binary', path: '/home/u/.local/bin/claude-metrics' })).toBe('/home/u/.local/bin/claude-metrics emit');
  });
});

describe('formatting detection', () => {
  it('finds tabs, 4 spaces, CRLF', () => {
    expect(detectFormatting('{\n\t"a": 1\n}')).toMatchObject({ insertSpaces: false, eol: '\n' });
    expect(detectFormatting('{\r\n    "a": 1\r\n}')).toMatchObject({ insertSpaces: true, tabSize: 4, eol: '\r\n' });
    expect(detectFormatting('{}')).toMatchObject({ insertSpaces: true, tabSize: 2 });
  });
});

describe.each(VALID)('settings fixture %s', (name) => {
  const original = readFileSync(join(FIX, `${name}.json`), 'utf8');
  const installed = planInstall(original, SPEC, `${name}.json`);

  it('install matches the golden output and keeps what was there', () => {
    expect(installed.text).toBe(golden(`${name}.installed.json`, installed.text));
    expect(installed.changed).toBe(true);
    // Every event carries exactly one hook of ours.
    const ours = findOurHooks(installed.text, name).commands;
    expect(ours.map((c) => c.event).sort()).toEqual([...DEFAULT_EVENTS].sort());
    expect(new Set(ours.map((c) => c.command))).toEqual(new Set([COMMAND]));
    // Formatting follows the file.
    if (original.includes('\r\n')) expect(installed.text.replace(/\r\n/g, '')).not.toContain('\n');
    if (original.includes('\n\t')) expect(installed.text).not.toMatch(/\n {2}/);
    if (original !== '' ) expect(installed.text.endsWith('\n')).toBe(original.endsWith('\n'));
    for (const comment of original.match(/\/\/.*|\/\*[\s\S]*?\*\//g) ?? []) expect(installed.text).toContain(comment);
  });

  it('is idempotent: install twice = install once', () => {
    const again = planInstall(installed.text, SPEC, name);
    expect(again.changed).toBe(false);
    expect(again.text).toBe(installed.text);
    expect(again.unchanged.length).toBe(DEFAULT_EVENTS.length);
  });

  it('uninstall removes only our entries', () => {
    const removed = planUninstall(installed.text, name).text;
    expect(removed).toBe(golden(`${name}.uninstalled.json`, removed));
    expect(findOurHooks(removed, name).commands).toEqual([]);
    // The surgical path (no install record) also drops an empty "hooks" it cannot tell from ours.
    const expected: Record<string, string> = { empty: '{}\n', 'crlf-four-spaces': '{\r\n    "model": "opus"\r\n}\r\n' };
    if (name !== 'older-version') expect(removed).toBe(expected[name] ?? original);
  });
});

describe('edge cases', () => {
  it('keeps unrelated hooks in the same matcher group when upgrading an older version of ours', () => {
    const original = readFileSync(join(FIX, 'older-version.json'), 'utf8');
    const out = planInstall(original, SPEC, 'x').text;
    expect(out).toContain('echo done >> /tmp/log');
    expect(out).not.toContain('npx claude-metrics');
    // The duplicate (two old hooks of ours on SessionStart) is collapsed to one.
    expect(findOurHooks(out, 'x').commands.filter((c) => c.event === 'SessionStart')).toHaveLength(1);
    const removed = planUninstall(out, 'x').text;
    expect(removed).toContain('echo done >> /tmp/log');
    expect(JSON.parse(removed)).toEqual({ hooks: { PostToolUse: [{ matcher: '*', hooks: [{ type: 'command', command: 'echo done >> /tmp/log' }] }] } });
  });

  it('tool events get matcher "*", the others none; --async and timeout are written', () => {
    const out = JSON.parse(planInstall('{}', { ...SPEC, async: true, timeoutS: 7 }, 'x').text) as { hooks: Record<string, Array<Record<string, unknown>>> };
    expect(out.hooks.PreToolUse![0]).toEqual({ matcher: '*', hooks: [{ type: 'command', command: COMMAND, timeout: 7, async: true }] });
    expect(out.hooks.Stop![0]).toEqual({ hooks: [{ type: 'command', command: COMMAND, timeout: 7, async: true }] });
    // Switching back to sync updates in place.
    const sync = planInstall(JSON.stringify(out, null, 2), SPEC, 'x');
    expect(sync.updated.length).toBe(DEFAULT_EVENTS.length);
    expect(sync.text).not.toContain('async');
  });

  it.each([
    ['malformed', /malformed\.json:5:3: not valid JSON \(\w+\); file left untouched/],
    ['not-object', /expected a JSON object/],
    ['hooks-not-object', /"hooks" is not an object/],
  ])('%s is a clear error', (name, message) => {
    const text = readFileSync(join(FIX, `${name}.json`), 'utf8');
    expect(() => planInstall(text, SPEC, `${name}.json`)).toThrow(SettingsError);
    expect(() => planInstall(text, SPEC, `${name}.json`)).toThrow(message);
    expect(() => planUninstall(text, `${name}.json`)).toThrow(message);
  });

  it('uninstall of a file without our hooks changes nothing', () => {
    const text = readFileSync(join(FIX, 'unrelated-hooks.json'), 'utf8');
    expect(planUninstall(text, 'x')).toEqual({ text, changed: false, removed: [] });
  });
});

describe('unifiedDiff', () => {
  it('is empty for equal texts', () => {
    expect(unifiedDiff('a\n', 'a\n', { a: 'x', b: 'y' })).toBe('');
  });
  it('shows hunks with context and line numbers', () => {
    const a = ['1', '2', '3', '4', '5', '6', '7', '8', '9', '10'].join('\n') + '\n';
    const b = ['1', '2', '3', '4', 'five', '6', '7', '8', '9', '10', '11'].join('\n') + '\n';
    expect(unifiedDiff(a, b, { a: 'a/f', b: 'b/f' }, 1)).toBe(['--- a/f', '+++ b/f', '@@ -4,3 +4,3 @@', ' 4', '-5', '+five', ' 6', '@@ -10,1 +10,2 @@', ' 10', '+11', ''].join('\n'));
  });
  it('diffs against an empty file', () => {
    expect(unifiedDiff('', '{}\n', { a: '/dev/null', b: 's' })).toBe('--- /dev/null\n+++ s\n@@ -0,0 +1,1 @@\n+{}\n');
  });
});

it('has a golden for every valid fixture', () => {
  const names = readdirSync(FIX).filter((f) => f.endsWith('.json')).map((f) => f.slice(0, -5));
  for (const n of VALID) expect(names).toContain(n);
});
