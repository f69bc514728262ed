/**
 * Turning the fast hook's inbox files into events. A file becomes exactly the
 * event `emit` would have built from the same input and environment, with the
 * file's mtime as the event's time and an id derived from the file (name, mtime,
 * content), so a file read twice (a drainer killed between delivering and
 * deleting) is the same event twice, which the collector ignores.
 */
import { closeSync, fstatSync, openSync, readdirSync, readFileSync, readSync, statSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { resolveConfig, type Config } from '../config';
import { parseEmitArgs } from '../emit/args';
import { buildEvent, parseHookJson } from '../emit/emit';
import { mapHook, type HookFields } from '../emit/hook';
import type { HarnessEvent } from '../event';
import { deterministicId } from '../ids';
import type { Logger } from '../log';
import { statePaths, type StatePaths } from '../paths';
import { parseRawHook, RAW_END } from './raw';

/** A file still unfinished after this long lost its writer (killed by the hook timeout). */
const ABANDONED_MS = 60_000;

export interface InboxItem {
  file: string;
  event: HarnessEvent;
  hook: HookFields;
  /** The environment the hook ran in (captured by the hook script) over ours. */
  env: NodeJS.ProcessEnv;
  config: Config;
  paths: StatePaths;
}

/** Complete hook files, oldest first (so a PreToolUse is read before its PostToolUse). */
export function listInbox(inbox: string): Array<{ file: string; mtimeMs: number; mtimeNs: bigint }> {
  let names: string[];
  try {
    names = readdirSync(inbox).filter((n) => n.endsWith('.hook'));
  } catch {
    return [];
  }
  const out: Array<{ file: string; mtimeMs: number; mtimeNs: bigint }> = [];
  for (const n of names) {
    try {
      const st = statSync(join(inbox, n), { bigint: true });
      out.push({ file: join(inbox, n), mtimeMs: Number(st.mtimeNs / 1_000_000n), mtimeNs: st.mtimeNs });
    } catch {
      /* taken by another reader */
    }
  }
  return out.sort((a, b) => (a.mtimeNs < b.mtimeNs ? -1 : a.mtimeNs > b.mtimeNs ? 1 : a.file < b.file ? -1 : 1));
}

/**
 * Reads one inbox file. Returns the event, or null when there is nothing to send
 * (unfinished: left for later, or set aside once abandoned; not a hook input).
 */
export function readInboxFile(entry: { file: string; mtimeMs: number; mtimeNs: bigint }, base: NodeJS.ProcessEnv, log: Logger, now = Date.now()): InboxItem | null {
  // The content and then the mtime of what was read, from one descriptor: the listing's mtime
  // can be older than the hook's last write (the end mark), and an id made from it would differ
  // from the one the next reader makes, so a file read twice (a drainer killed between
  // delivering and deleting) would be two events. Once the end mark is read, the writer is done.
  let bytes: Buffer;
  let mtimeNs: bigint;
  let fd: number | undefined;
  try {
    fd = openSync(entry.file, 'r');
    bytes = readFileSync(fd);
    mtimeNs = fstatSync(fd, { bigint: true }).mtimeNs;
  } catch {
    return null;
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
  const mtimeMs = Number(mtimeNs / 1_000_000n);
  const raw = parseRawHook(bytes);
  if (!raw.complete) {
    // A young file is being written (even an empty one: the shell creates it before the first
    // byte). An old one lost its writer: deleted, not kept, as it holds the hook's raw input.
    if (now - mtimeMs > ABANDONED_MS) {
      log.warn('inbox: removed a hook file that was never finished (its hook was killed)', { file: entry.file, bytes: bytes.length, reason: raw.reason });
      remove(entry.file);
    }
    return null;
  }
  // The hook's own values for every variable it captured, set or not: the drainer's
  // environment is some earlier hook's, and its run or label must not leak into this event.
  const env: NodeJS.ProcessEnv = { ...base };
  for (const [k, v] of Object.entries(raw.env)) {
    if (v) env[k] = v;
    else delete env[k];
  }
  const { config } = resolveConfig({ env });
  const paths = statePaths(config.stateDir);
  const parsed = parseHookJson(raw.input);
  if (!parsed) {
    log.warn('inbox: the hook input is not a JSON object; nothing emitted', { file: entry.file, bytes: raw.input.length, head: JSON.stringify(raw.input.slice(0, 80)) });
    remove(entry.file);
    return null;
  }
  const hook = mapHook(parsed, { includeContent: config.includeContent, maxContentBytes: config.maxContentBytes });
  if (!hook.cwd && env.PWD) hook.cwd = env.PWD;
  const event = buildEvent({ args: parseEmitArgs([]), hook, env, config, paths, now: mtimeMs, log });
  event.event_id = deterministicId('inbox', entry.file, String(mtimeNs), raw.input);
  return { file: entry.file, event, hook, env, config, paths };
}

/**
 * Is any file in the inbox finished? A drainer on its way out needs to know: a
 * finished file's hook may have seen it alive, while an unfinished one's hook has
 * not looked yet (it looks after writing) and will start a drainer itself.
 */
export function hasFinished(inbox: string): boolean {
  const end = Buffer.from(RAW_END);
  const tail = Buffer.alloc(end.length);
  for (const { file } of listInbox(inbox)) {
    let fd: number | undefined;
    try {
      fd = openSync(file, 'r');
      const size = fstatSync(fd).size;
      if (size >= end.length && readSync(fd, tail, 0, end.length, size - end.length) === end.length && tail.equals(end)) return true;
    } catch {
      /* gone */
    } finally {
      if (fd !== undefined) closeSync(fd);
    }
  }
  return false;
}

/** Removes an inbox file; false when it is still there (a read-only inbox). */
export function remove(file: string): boolean {
  try {
    unlinkSync(file);
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ENOENT'; // already gone: taken by another reader
  }
  return true;
}
