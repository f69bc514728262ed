/**
 * An inbox file's event id must be the same whoever reads it and when: a drainer
 * killed between delivering and deleting leaves the file for the next one, and
 * only equal ids let the collector drop the second delivery.
 */
import { mkdtempSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { listInbox, readInboxFile } from '../../src/inbox/inbox';
import { RAW_END, RAW_HEADER } from '../../src/inbox/raw';
import type { Logger } from '../../src/log';

const quiet: Logger = { debug() {}, info() {}, warn() {}, error() {} } as unknown as Logger;
let dir: string;
afterEach(() => rmSync(dir, { recursive: true, force: true }));

describe('inbox files', () => {
  it('a file listed while its hook was still writing gets the id of the finished file', () => {
    dir = mkdtempSync(join(tmpdir(), 'cm-inbox-'));
    const file = join(dir, '4242.0.hook');
    const env = { HOME: dir, CLAUDE_METRICS_STATE_DIR: join(dir, 'state'), CLAUDE_METRICS_ENDPOINT: 'http://127.0.0.1:9/metrics/harness' };
    // The hook writes its head first: a drainer lists the file (and its mtime) then.
    writeFileSync(file, `${RAW_HEADER}PWD=${dir}\0\n`);
    const early = new Date(Date.now() - 5_000);
    utimesSync(file, early, early);
    const listed = listInbox(dir)[0]!;
    // …and the input and end mark land before the drainer reads the content.
    writeFileSync(file, `${RAW_HEADER}PWD=${dir}\0\n{"hook_event_name":"PostToolUse","session_id":"s","tool_name":"Bash","tool_use_id":"toolu_1"}${RAW_END}`);
    expect(statSync(file).mtimeMs).toBeGreaterThan(listed.mtimeMs);
    const first = readInboxFile(listed, env, quiet);
    const second = readInboxFile(listInbox(dir)[0]!, env, quiet);
    expect(first?.event.event_id).toBeDefined();
    expect(first!.event.event_id).toBe(second!.event.event_id);
    expect(first!.event.timestamp).toBe(second!.event.timestamp);
  });
});
