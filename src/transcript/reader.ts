/**
 * The one transcript reader: streams a Claude Code JSONL file from a byte
 * offset, looks only at lines with a usage marker (most lines are
 * prompts, tool results, attachments), skips and counts malformed lines, and
 * leaves a partial last line for next time. It yields usage lines; deduplication
 * is the caller's (ccusage's rule needs every file).
 */
import { closeSync, openSync, readdirSync, readSync, statSync } from 'node:fs';
import { basename, join, sep } from 'node:path';
import type { Tokens } from './pricing';

export interface UsageLine {
  /** ccusage's dedupe key: message.id + requestId (or message.id alone); null = never deduped. */
  key: string | null;
  messageId: string | null;
  requestId: string | null;
  model: string;
  tokens: Tokens;
  /** input + output + cache creation + cache read: among repeats the largest wins. */
  total: number;
  timestamp: string;
  costUSD: number | null;
  /** Byte offset of the line in its file. */
  offset: number;
  sessionId: string | null;
  cwd: string | null;
  isSidechain: boolean;
  /** Claude Code's entrypoint for the session (`cli`, `sdk-cli`, …), when written. */
  entrypoint: string | null;
}

export interface ScanResult {
  lines: UsageLine[];
  /** Offset just past the last complete line consumed. */
  endOffset: number;
  /** Offset just past the last newline: where an unterminated last line, parsed or not, starts. */
  completeOffset: number;
  malformed: number;
}

// ccusage 20 pattern-matches compact JSON; a line serialized with `"usage": {` is ignored by it, and by us.
const USAGE_MARKER = Buffer.from('"usage":{');
const CHUNK = 4 * 1024 * 1024;
const num = (v: unknown) => (typeof v === 'number' && Number.isFinite(v) && v > 0 ? v : 0);

/** Parses one line; null when it is not a usage line ccusage would count. */
export function parseUsageLine(text: string, offset: number): UsageLine | null | 'malformed' {
  let x: unknown;
  try {
    x = JSON.parse(text);
  } catch {
    return 'malformed';
  }
  if (x === null || typeof x !== 'object' || Array.isArray(x)) return null;
  const o = x as Record<string, unknown>;
  const m = o.message as Record<string, unknown> | undefined;
  if (!m || typeof m !== 'object') return null;
  const u = m.usage as Record<string, unknown> | undefined;
  if (!u || typeof u !== 'object') return null;
  if (typeof o.timestamp !== 'string' || o.timestamp === '') return null;
  const tokens: Tokens = {
    input_tokens: num(u.input_tokens),
    output_tokens: num(u.output_tokens),
    cache_creation_input_tokens: num(u.cache_creation_input_tokens),
    cache_read_input_tokens: num(u.cache_read_input_tokens),
  };
  const messageId = typeof m.id === 'string' && m.id ? m.id : null;
  const requestId = typeof o.requestId === 'string' && o.requestId ? o.requestId : null;
  return {
    key: messageId ? `${messageId}\u0000${requestId ?? ''}` : null,
    messageId,
    requestId,
    model: typeof m.model === 'string' && m.model ? m.model : 'unknown',
    tokens,
    total: tokens.input_tokens + tokens.output_tokens + tokens.cache_creation_input_tokens + tokens.cache_read_input_tokens,
    timestamp: o.timestamp,
    costUSD: typeof o.costUSD === 'number' ? o.costUSD : null,
    offset,
    sessionId: typeof o.sessionId === 'string' ? o.sessionId : null,
    cwd: typeof o.cwd === 'string' ? o.cwd : null,
    isSidechain: o.isSidechain === true,
    entrypoint: typeof o.entrypoint === 'string' ? o.entrypoint : null,
  };
}

/**
 * Reads `path` from `fromOffset`. With `partialTail: 'skip'` (incremental
 * reading) an unterminated last line is left for next time; with 'parse' (a
 * one-off report) it is parsed if it is whole JSON, as ccusage does.
 */
export function scanTranscript(path: string, fromOffset = 0, opts: { partialTail?: 'skip' | 'parse' } = {}): ScanResult {
  const result: ScanResult = { lines: [], endOffset: fromOffset, completeOffset: fromOffset, malformed: 0 };
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch {
    return result;
  }
  try {
    // One buffer for every file of a scan: a fresh 4 MiB allocation per file is a
    // fresh mmap, and its page faults cost more system time than the reads.
    let buf = sharedBuffer;
    let carry = 0; // bytes of an unfinished line at the start of buf
    let filePos = fromOffset; // file offset of buf[0]
    for (;;) {
      if (carry === buf.length) {
        // One line longer than the buffer: grow it (and keep the bigger one).
        const bigger = Buffer.allocUnsafe(buf.length * 2);
        buf.copy(bigger, 0, 0, carry);
        buf = sharedBuffer = bigger;
      }
      const n = readSync(fd, buf, carry, buf.length - carry, filePos + carry);
      const end = carry + n;
      // Hop from usage marker to usage marker and only then find the line around
      // it: most lines have none, so most bytes are never searched for newlines.
      // Searches run on a view of the whole lines: past them the buffer holds stale bytes.
      const lines = buf.subarray(0, end > 0 ? buf.lastIndexOf(10, end - 1) + 1 : 0);
      let marker = lines.indexOf(USAGE_MARKER);
      while (marker >= 0) {
        const nl = lines.indexOf(10, marker);
        const start = marker === 0 ? 0 : lines.lastIndexOf(10, marker - 1) + 1;
        handle(buf, start, nl, filePos + start, result);
        marker = lines.indexOf(USAGE_MARKER, nl + 1);
      }
      let pos = lines.length;
      result.endOffset = result.completeOffset = filePos + pos;
      if (n === 0) {
        // EOF: what remains is an unterminated line.
        if (pos < end && opts.partialTail === 'parse') {
          const before = result.malformed;
          if (buf.subarray(pos, end).indexOf(USAGE_MARKER) >= 0) handle(buf, pos, end, filePos + pos, result);
          if (result.malformed === before) result.endOffset = filePos + end;
          else result.malformed = before; // a torn write, not malformed: it may complete later
        }
        break;
      }
      buf.copy(buf, 0, pos, end);
      carry = end - pos;
      filePos += pos;
    }
  } finally {
    closeSync(fd);
  }
  return result;
}

let sharedBuffer = Buffer.allocUnsafe(CHUNK);

function handle(buf: Buffer, start: number, end: number, offset: number, result: ScanResult): void {
  const parsed = parseUsageLine(buf.toString('utf8', start, end), offset);
  if (parsed === 'malformed') result.malformed++;
  else if (parsed) result.lines.push(parsed);
}

export interface TranscriptFile {
  path: string;
  /** The path under the projects directory. */
  relPath: string;
  project: string;
  /** The file name, or the `<session>` directory of `<session>/subagents/agent-*.jsonl`. */
  sessionId: string;
  /** agent-*.jsonl of a subagent, else null. */
  agentId: string | null;
  size: number;
  mtimeMs: number;
  dev: number;
  ino: number;
}

/** What a directory held when it was read: its transcripts and subdirectories, sorted by name. */
export interface DirListing {
  ino: number;
  mtimeMs: number;
  /** Date.now() when it was stat'ed for this read. */
  readMs: number;
  /** Names of the *.jsonl files and the subdirectories, in walk order. */
  names: string[];
  /** For each name: 1 a directory, 0 a file. */
  isDir: number[];
}

/**
 * Directory listings remembered from an earlier walk (usage's cache): a directory
 * whose inode and mtime are unchanged has the same entries (adding, removing or
 * renaming one changes its mtime), so it is stat'ed instead of read; one modified
 * within `racyMs` before it was read is read again.
 */
export interface DirMemo {
  get(rel: string): DirListing | undefined;
  set(rel: string, listing: DirListing): void;
  racyMs: number;
}

/** Every *.jsonl under a projects directory, sorted by path (ccusage's order), with what identifies its bytes (device, inode, size, mtime). */
export function listTranscripts(projectsDir: string, memo?: DirMemo): TranscriptFile[] {
  const out: TranscriptFile[] = [];
  const listing = (dir: string, rel: string): { names: string[]; isDir: number[] } | null => {
    let st;
    if (memo) {
      const readMs = Date.now();
      try {
        st = statSync(dir);
      } catch {
        return null;
      }
      const known = memo.get(rel);
      if (known && known.ino === st.ino && known.mtimeMs === st.mtimeMs && known.mtimeMs < known.readMs - memo.racyMs) return known;
      const fresh = readListing(dir);
      if (fresh) memo.set(rel, { ino: st.ino, mtimeMs: st.mtimeMs, readMs, ...fresh });
      return fresh;
    }
    return readListing(dir);
  };
  const walk = (dir: string, rel: string) => {
    const l = listing(dir, rel);
    if (!l) return;
    for (let i = 0; i < l.names.length; i++) {
      const name = l.names[i]!;
      const p = join(dir, name);
      const relPath = rel === '' ? name : `${rel}${sep}${name}`;
      if (l.isDir[i] === 1) {
        walk(p, relPath);
        continue;
      }
      let st;
      try {
        st = statSync(p);
      } catch {
        continue; // gone since its directory was read
      }
      const parts = relPath.split(sep);
      out.push({
        path: p,
        relPath,
        project: parts[0] ?? '',
        sessionId: parts.length > 2 ? parts[1]! : basename(parts[1] ?? parts[0]!, '.jsonl'),
        agentId: parts.length > 2 && /^agent-/.test(name) ? basename(name, '.jsonl') : null,
        size: st.size,
        mtimeMs: st.mtimeMs,
        dev: st.dev,
        ino: st.ino,
      });
    }
  };
  walk(projectsDir, '');
  return out;
}

/** A directory's transcripts and subdirectories, sorted by name (null when it cannot be read). */
function readListing(dir: string): { names: string[]; isDir: number[] } | null {
  let entries;
  try {
    entries = readdirSync(dir, { withFileTypes: true });
  } catch {
    return null;
  }
  entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const names: string[] = [];
  const isDir: number[] = [];
  for (const e of entries) {
    if (e.isDirectory()) {
      names.push(e.name);
      isDir.push(1);
    } else if (e.isFile() && e.name.endsWith('.jsonl')) {
      names.push(e.name);
      isDir.push(0);
    }
  }
  return { names, isDir };
}
