/**
 * What `usage` already read, per transcript file, so a repeated `usage` on an
 * unchanged tree reads only what changed. A file is known by its device, inode,
 * size and mtime:
 * - all four the same: its usage comes from the cache, nothing is read;
 * - the same file grown, and the bytes it had are still there (a hash of its head
 *   and of the bytes just before its old end): only the new tail is read, from the
 *   start of its last unterminated line (the reader's offset, as at Stop);
 * - anything else (shrunk, replaced, rewritten in place, another inode): read whole;
 * - a file no longer in the tree drops out of the cache.
 * A file modified within RACY_MS before it was last read may have changed again in
 * the same mtime tick, so it is not trusted on size and mtime alone (git's "racy"
 * rule): it is read again.
 *
 * What is kept per file is the file's own reduction under ccusage's rule: per
 * message key the first line with the largest token total, in first-seen order,
 * and the lines without a message id in file order. Folding these per file, in path
 * order, gives the same winners, in the same order, as folding every line
 * (collect.ts), so the totals are ccusage's with or without the cache.
 *
 * The cache is one JSON file per projects directory in the state dir, 0600,
 * versioned (format and app version: another version's cache is ignored and
 * rebuilt, as is a corrupt one), written only when something changed, through a
 * temp file and a rename: two `usage` runs at once each write a whole cache and
 * the last rename wins.
 */
import { createHash } from 'node:crypto';
import { closeSync, mkdirSync, openSync, readdirSync, readFileSync, readSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { VERSION } from '../version';
import type { Tokens } from './pricing';
import { scanTranscript, type TranscriptFile, type UsageLine } from './reader';

/** What the report needs of a usage line (a UsageLine has more). */
export type ReportLine = Pick<UsageLine, 'key' | 'model' | 'tokens' | 'total' | 'timestamp' | 'costUSD'>;

/** One file's reduction: keyed winners in first-seen order and unkeyed lines, interleaved as first seen. */
export interface FileUsage {
  lines: ReportLine[];
  malformed: number;
}

export interface CacheStats {
  unchanged: number;
  appended: number;
  /** Read from the start: new, rewritten, replaced, or touched too recently to trust. */
  whole: number;
  dropped: number;
  bytesRead: number;
  /** Why the cache file was not used, when it was not (missing, corrupt, another version). */
  ignored?: string;
  /** Something changed and the cache could not be written back (the state dir is read-only, full…). */
  writeFailed?: boolean;
}

export const CACHE_FORMAT = 1;
/** Bytes hashed at the head and just before the old end of a file, to tell an append from a rewrite. */
const PROBE = 4096;
/** A file modified this close before it was read is read again next time (its mtime tick may hide a change). */
export const RACY_MS = 2000;
/** Temp files of a crashed writer older than this are removed by the next writer. */
const STALE_TMP_MS = 10 * 60_000;

/** Columns of a file's lines, as stored: key, model (index into the cache's model table), timestamp, 4 token counts, cost. */
interface Columns {
  k: Array<string | null>;
  m: number[];
  ts: string[];
  n: number[];
  c: Array<number | null>;
}

interface Entry extends Columns {
  dev: number;
  ino: number;
  size: number;
  mtimeMs: number;
  /** Date.now() when the file was stat'ed for this read. */
  readMs: number;
  head: string;
  tail: string;
  /** Offset past the last newline: an append is read from here. */
  resume: number;
  /** Malformed lines before `resume`. */
  malformed: number;
  /** The unterminated last line, when it parsed (ccusage counts it), as columns of one line. */
  end?: Columns;
}

interface CacheFile {
  format: number;
  app: string;
  dir: string;
  models: string[];
  files: Record<string, Entry>;
}

/** The cache file for a projects directory. */
export function cacheFileFor(cacheDir: string, projectsDir: string): string {
  return join(cacheDir, `${createHash('sha256').update(resolve(projectsDir)).digest('hex').slice(0, 24)}.json`);
}

/** Adds lines to a file's reduction (the rule of collect.ts, within one file). */
function fold(into: ReportLine[], index: Map<string, number>, lines: Iterable<ReportLine>): void {
  for (const line of lines) {
    if (line.key === null) {
      into.push(line);
      continue;
    }
    const at = index.get(line.key);
    if (at === undefined) {
      index.set(line.key, into.length);
      into.push(line);
    } else if (line.total > into[at]!.total) into[at] = line;
  }
}

function decode(cols: Columns, models: string[]): ReportLine[] {
  const { k, m, ts, n, c } = cols;
  const count = k.length;
  if (!Array.isArray(k) || !Array.isArray(m) || !Array.isArray(ts) || !Array.isArray(n) || !Array.isArray(c) || m.length !== count || ts.length !== count || c.length !== count || n.length !== count * 4) throw new Error('columns of unequal length');
  const out: ReportLine[] = new Array(count);
  for (let i = 0; i < count; i++) {
    const model = models[m[i]!];
    const key = k[i]!;
    const timestamp = ts[i]!;
    const cost = c[i]!;
    if (model === undefined || typeof timestamp !== 'string' || (key !== null && typeof key !== 'string') || (cost !== null && typeof cost !== 'number')) throw new Error('bad line');
    const tokens: Tokens = { input_tokens: n[4 * i]!, output_tokens: n[4 * i + 1]!, cache_creation_input_tokens: n[4 * i + 2]!, cache_read_input_tokens: n[4 * i + 3]! };
    const total = tokens.input_tokens + tokens.output_tokens + tokens.cache_creation_input_tokens + tokens.cache_read_input_tokens;
    if (!Number.isFinite(total)) throw new Error('bad tokens');
    out[i] = { key, model, tokens, total, timestamp, costUSD: cost };
  }
  return out;
}

function encode(lines: readonly ReportLine[], modelIndex: Map<string, number>): Columns {
  const cols: Columns = { k: [], m: [], ts: [], n: [], c: [] };
  for (const l of lines) {
    let mi = modelIndex.get(l.model);
    if (mi === undefined) modelIndex.set(l.model, (mi = modelIndex.size));
    cols.k.push(l.key);
    cols.m.push(mi);
    cols.ts.push(l.timestamp);
    cols.n.push(l.tokens.input_tokens, l.tokens.output_tokens, l.tokens.cache_creation_input_tokens, l.tokens.cache_read_input_tokens);
    cols.c.push(l.costUSD);
  }
  return cols;
}

/** sha1 of `length` bytes at `position` (fewer if the file is shorter). */
function hashAt(fd: number, position: number, length: number): string {
  const buf = Buffer.allocUnsafe(length);
  let got = 0;
  while (got < length) {
    const n = readSync(fd, buf, got, length - got, position + got);
    if (n === 0) break;
    got += n;
  }
  return createHash('sha1').update(buf.subarray(0, got)).digest('base64');
}

function probes(path: string, size: number): { head: string; tail: string } | null {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch {
    return null;
  }
  try {
    return { head: hashAt(fd, 0, Math.min(PROBE, size)), tail: hashAt(fd, Math.max(0, size - PROBE), Math.min(PROBE, size)) };
  } finally {
    closeSync(fd);
  }
}

/** Does the file still hold, unchanged, the bytes the entry was read from? (It may have more after them.) */
function stillHolds(path: string, e: Entry): boolean {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch {
    return false;
  }
  try {
    return hashAt(fd, 0, Math.min(PROBE, e.size)) === e.head && hashAt(fd, Math.max(0, e.size - PROBE), Math.min(PROBE, e.size)) === e.tail;
  } finally {
    closeSync(fd);
  }
}

function loadCache(file: string, projectsDir: string): { cache: CacheFile | null; ignored?: string } {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return { cache: null, ignored: 'none yet' };
  }
  let c: CacheFile;
  try {
    c = JSON.parse(text) as CacheFile;
  } catch {
    return { cache: null, ignored: 'corrupt (not JSON)' };
  }
  if (c === null || typeof c !== 'object' || c.format !== CACHE_FORMAT || c.app !== VERSION) return { cache: null, ignored: `another version (${String((c as Partial<CacheFile> | null)?.format)}/${String((c as Partial<CacheFile> | null)?.app)})` };
  if (c.dir !== resolve(projectsDir) || !Array.isArray(c.models) || c.files === null || typeof c.files !== 'object') return { cache: null, ignored: 'corrupt (shape)' };
  return { cache: c };
}

/**
 * Each file's reduction, from the cache where its bytes are known, reading what is
 * not; then writes the cache back if anything changed (best effort: a cache that
 * cannot be written only costs the next run its speed).
 */
export function fileUsages(projectsDir: string, files: readonly TranscriptFile[], cacheFile: string): { usages: FileUsage[]; stats: CacheStats } {
  const { cache, ignored } = loadCache(cacheFile, projectsDir);
  const stats: CacheStats = { unchanged: 0, appended: 0, whole: 0, dropped: 0, bytesRead: 0, ...(ignored && ignored !== 'none yet' ? { ignored } : {}) };
  const oldModels = cache?.models ?? [];
  const oldFiles = cache?.files ?? {};
  const next: Record<string, Entry> = {};
  const modelIndex = new Map<string, number>();
  let changed = cache === null;
  const usages: FileUsage[] = [];
  const root = resolve(projectsDir);

  for (const f of files) {
    const rel = relative(root, resolve(f.path));
    const readMs = Date.now();
    const old = Object.prototype.hasOwnProperty.call(oldFiles, rel) ? oldFiles[rel] : undefined;
    const sameFile = old !== undefined && old.dev === f.dev && old.ino === f.ino;
    const trusted = sameFile && old.mtimeMs < old.readMs - RACY_MS;
    let settled: ReportLine[] | undefined;
    let endLines: ReportLine[] = [];
    let resume = 0;
    let malformed = 0;
    let head: string | undefined;
    let tail: string | undefined;
    let fromCache = false;

    if (sameFile && trusted && old.size === f.size && old.mtimeMs === f.mtimeMs) {
      try {
        settled = decode(old, oldModels);
        endLines = old.end ? decode(old.end, oldModels) : [];
        ({ resume, malformed, head, tail } = old);
        fromCache = true;
        stats.unchanged++;
      } catch {
        settled = undefined; // a damaged entry: read the file again
      }
    }
    if (settled === undefined && sameFile && f.size > old.size && stillHolds(f.path, old)) {
      try {
        const base = decode(old, oldModels);
        const scan = scanTranscript(f.path, old.resume, { partialTail: 'parse' });
        const index = new Map<string, number>();
        base.forEach((l, i) => l.key !== null && index.set(l.key, i));
        fold(base, index, scan.lines.filter((l) => l.offset < scan.completeOffset));
        settled = base;
        endLines = scan.lines.filter((l) => l.offset >= scan.completeOffset);
        resume = scan.completeOffset;
        malformed = old.malformed + scan.malformed;
        stats.bytesRead += f.size - old.resume;
        stats.appended++;
        changed = true;
      } catch {
        settled = undefined;
      }
    }
    if (settled === undefined) {
      const scan = scanTranscript(f.path, 0, { partialTail: 'parse' });
      settled = [];
      fold(settled, new Map(), scan.lines.filter((l) => l.offset < scan.completeOffset));
      endLines = scan.lines.filter((l) => l.offset >= scan.completeOffset);
      resume = scan.completeOffset;
      malformed = scan.malformed;
      stats.bytesRead += f.size;
      stats.whole++;
      changed = true;
    }
    if (head === undefined || tail === undefined) ({ head, tail } = probes(f.path, f.size) ?? { head: '', tail: '' });

    // The file's usage: its settled lines, then its unterminated last line folded in.
    let lines = settled;
    if (endLines.length > 0) {
      lines = [...settled];
      const index = new Map<string, number>();
      lines.forEach((l, i) => l.key !== null && index.set(l.key, i));
      fold(lines, index, endLines);
    }
    usages.push({ lines, malformed });
    // An entry served as it was keeps the time its bytes were read: that is what its mtime is trusted against.
    next[rel] = { dev: f.dev, ino: f.ino, size: f.size, mtimeMs: f.mtimeMs, readMs: fromCache ? old!.readMs : readMs, head, tail, resume, malformed, ...encode(settled, modelIndex), ...(endLines.length > 0 ? { end: encode(endLines, modelIndex) } : {}) };
  }
  for (const rel of Object.keys(oldFiles)) if (!Object.prototype.hasOwnProperty.call(next, rel)) stats.dropped++;
  if (stats.dropped > 0) changed = true;

  if (changed) {
    const out: CacheFile = { format: CACHE_FORMAT, app: VERSION, dir: root, models: [...modelIndex.keys()], files: next };
    if (!writeCache(cacheFile, JSON.stringify(out))) stats.writeFailed = true;
  }
  return { usages, stats };
}

function writeCache(file: string, text: string): boolean {
  const dir = join(file, '..');
  const tmp = `${file}.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`;
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    writeFileSync(tmp, text, { mode: 0o600 });
    renameSync(tmp, file);
  } catch {
    rmSync(tmp, { force: true });
    return false;
  }
  // A writer killed between its write and its rename leaves a temp file: the next one tidies up.
  try {
    for (const name of readdirSync(dir)) {
      if (!name.endsWith('.tmp')) continue;
      const p = join(dir, name);
      if (Date.now() - statSync(p).mtimeMs > STALE_TMP_MS) rmSync(p, { force: true });
    }
  } catch {
    /* another writer tidied first */
  }
  return true;
}
