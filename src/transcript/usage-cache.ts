/**
 * What `usage` already read, per transcript file, so a repeated `usage` on an
 * unchanged tree reads only what changed. A file is known by its device, inode,
 * size and mtime:
 * - all four the same: its usage comes from the cache, nothing is read;
 * - the same file grown, and the bytes it had are still there (a hash of its head
 *   and of the bytes just before its old end): only the new tail is read, from the
 *   start of its last unterminated line (scanTranscript from an offset, as the
 *   Stop hook's incremental reader does);
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
 * (collect.ts), so the report is the one read without the cache, to the bit.
 * Each kept line also says whether its key was seen in another file: keys seen in
 * one file only (nearly all) skip the cross-file map, unless a file read in this
 * run has them too.
 *
 * The cache is one JSON file per projects directory in the state dir, 0600,
 * versioned (format and app version: another version's cache is ignored and
 * rebuilt, as is a corrupt one), written only when something changed, through a
 * temp file and a rename: two `usage` runs at once each write a whole cache and
 * the last rename wins.
 */
import { createHash } from 'node:crypto';
import { closeSync, mkdirSync, openSync, readdirSync, readFileSync, readSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { VERSION } from '../version';
import type { Tokens } from './pricing';
import { scanTranscript, type DirListing, type DirMemo, type TranscriptFile, type UsageLine } from './reader';

/** What the report needs of a usage line (a UsageLine has more). */
export type ReportLine = Pick<UsageLine, 'key' | 'model' | 'tokens' | 'total' | 'timestamp' | 'costUSD'>;

export interface CacheStats {
  unchanged: number;
  appended: number;
  /** Read from the start: new, rewritten, replaced, or touched too recently to trust. */
  whole: number;
  dropped: number;
  bytesRead: number;
  /** Why the cache file was not used, when it was not (corrupt, another version). */
  ignored?: string;
  /** Something changed and the cache could not be written back (a read-only or full state dir). */
  writeFailed?: boolean;
}

export const CACHE_FORMAT = 1;
/** Bytes hashed at the head and just before the old end of a file, to tell an append from a rewrite. */
const PROBE = 4096;
/** A file modified this close before it was read is read again next time (its mtime tick may hide a change). */
export const RACY_MS = 2000;
/** Temp files of a crashed writer older than this are removed by the next writer. */
const STALE_TMP_MS = 10 * 60_000;

/**
 * A file's kept lines as columns (what JSON parses fastest): message id (null: a
 * line without one, never deduplicated), request id ('' for none), model (index
 * into the cache's model table), timestamp, 4 token counts per line, cost.
 */
interface Columns {
  mid: Array<string | null>;
  rid: string[];
  m: number[];
  ts: string[];
  n: number[];
  c: Array<number | null>;
}

/** A file's lines without their message and request ids (those are in the cache's second section). */
type Figures = Pick<Columns, 'm' | 'ts' | 'n' | 'c'>;

interface Entry extends Figures {
  dev: number;
  ino: number;
  size: number;
  mtimeMs: number;
  /** Date.now() when the file was stat'ed for the read these lines came from. */
  readMs: number;
  head: string;
  tail: string;
  /** Offset past the last newline: an append is read from here. */
  resume: number;
  /** Malformed lines before `resume`. */
  malformed: number;
  /** Indices of the lines without a message id (never deduplicated), ascending. */
  u: number[];
  /** [index, key] of the lines whose key was also in another file at the last write, ascending. */
  sh: Array<[number, string]>;
  /** The unterminated last line, when it parsed (ccusage counts it): folded in at use, never kept among the lines. */
  end?: Columns;
}

/** Per file, the ids of its lines: read only when a run must fold keys (a file changed) or write the cache. */
type KeySection = Record<string, Pick<Columns, 'mid' | 'rid'>>;

/**
 * On disk: two JSON lines. The first (format, models, per-file figures) is all an
 * unchanged tree needs; the second (message and request ids) is parsed only when
 * something changed. One file, so one rename replaces both together.
 */
interface CacheHead {
  format: number;
  app: string;
  dir: string;
  models: string[];
  files: Record<string, Entry>;
  /** The tree's directories as last read, so an unchanged one is stat'ed, not read (reader.ts DirMemo). */
  dirs: Record<string, DirListing>;
}

/** The cache file for a projects directory. */
export function cacheFileFor(cacheDir: string, projectsDir: string): string {
  return join(cacheDir, `${createHash('sha256').update(resolve(projectsDir)).digest('hex').slice(0, 24)}.json`);
}

const emptyColumns = (): Columns => ({ mid: [], rid: [], m: [], ts: [], n: [], c: [] });
const keyOf = (cols: Columns, i: number): string | null => (cols.mid[i] === null ? null : `${cols.mid[i]}\u0000${cols.rid[i]}`);
const totalOf = (cols: Figures, i: number): number => cols.n[4 * i]! + cols.n[4 * i + 1]! + cols.n[4 * i + 2]! + cols.n[4 * i + 3]!;

/** A model table shared by every file of the cache. */
class Models {
  readonly names: string[];
  private readonly index = new Map<string, number>();
  constructor(names: string[]) {
    this.names = [...names];
    this.names.forEach((n, i) => this.index.set(n, i));
  }
  id(name: string): number {
    let i = this.index.get(name);
    if (i === undefined) {
      i = this.names.length;
      this.names.push(name);
      this.index.set(name, i);
    }
    return i;
  }
}

function push(cols: Columns, l: UsageLine, models: Models): void {
  cols.mid.push(l.messageId);
  cols.rid.push(l.requestId ?? '');
  cols.m.push(models.id(l.model));
  cols.ts.push(l.timestamp);
  cols.n.push(l.tokens.input_tokens, l.tokens.output_tokens, l.tokens.cache_creation_input_tokens, l.tokens.cache_read_input_tokens);
  cols.c.push(l.costUSD);
}

function copyLine(to: Columns, from: Columns, i: number): void {
  to.mid.push(from.mid[i]!);
  to.rid.push(from.rid[i]!);
  to.m.push(from.m[i]!);
  to.ts.push(from.ts[i]!);
  to.n.push(from.n[4 * i]!, from.n[4 * i + 1]!, from.n[4 * i + 2]!, from.n[4 * i + 3]!);
  to.c.push(from.c[i]!);
}

function setLine(to: Columns, at: number, from: Columns, i: number): void {
  to.mid[at] = from.mid[i]!;
  to.rid[at] = from.rid[i]!;
  to.m[at] = from.m[i]!;
  to.ts[at] = from.ts[i]!;
  for (let k = 0; k < 4; k++) to.n[4 * at + k] = from.n[4 * i + k]!;
  to.c[at] = from.c[i]!;
}

/** Folds `from`'s lines into `into` (the rule of collect.ts, within one file): a repeat replaces its key's line only when larger. */
function fold(into: Columns, from: Columns): void {
  const index = new Map<string, number>();
  for (let i = 0; i < into.mid.length; i++) {
    const k = keyOf(into, i);
    if (k !== null) index.set(k, i);
  }
  for (let i = 0; i < from.mid.length; i++) {
    const k = keyOf(from, i);
    const at = k === null ? undefined : index.get(k);
    if (at === undefined) {
      if (k !== null) index.set(k, into.mid.length);
      copyLine(into, from, i);
    } else if (totalOf(from, i) > totalOf(into, at)) setLine(into, at, from, i);
  }
}

/** Lines read from `fromOffset`: those before the last newline, and the unterminated last one when it parsed. */
function read(path: string, fromOffset: number, models: Models): { settled: Columns; end: Columns; resume: number; malformed: number } {
  const scan = scanTranscript(path, fromOffset, { partialTail: 'parse' });
  const settled = emptyColumns();
  const end = emptyColumns();
  for (const l of scan.lines) push(l.offset < scan.completeOffset ? settled : end, l, models);
  return { settled, end, resume: scan.completeOffset, malformed: scan.malformed };
}

/** Checks a cached entry's figures before trusting them (a damaged entry costs its file one read, nothing else). */
function validFigures(c: Figures, models: number): boolean {
  if (!Array.isArray(c.m) || !Array.isArray(c.ts) || !Array.isArray(c.n) || !Array.isArray(c.c)) return false;
  const count = c.m.length;
  if (c.ts.length !== count || c.c.length !== count || c.n.length !== 4 * count) return false;
  for (let i = 0; i < count; i++) {
    const mi = c.m[i]!;
    const cost = c.c[i];
    if (!(mi >= 0 && mi < models) || typeof c.ts[i] !== 'string' || (cost !== null && typeof cost !== 'number')) return false;
  }
  for (const x of c.n) if (typeof x !== 'number' || !(x >= 0)) return false;
  return true;
}

function validIds(k: Pick<Columns, 'mid' | 'rid'> | undefined, count: number): boolean {
  if (!k || !Array.isArray(k.mid) || !Array.isArray(k.rid) || k.mid.length !== count || k.rid.length !== count) return false;
  for (let i = 0; i < count; i++) if ((k.mid[i] !== null && typeof k.mid[i] !== 'string') || typeof k.rid[i] !== 'string') return false;
  return true;
}

function validEntry(e: Entry, models: number): boolean {
  if (!validFigures(e, models) || !Array.isArray(e.u) || !Array.isArray(e.sh)) return false;
  const count = e.m.length;
  if (!e.u.every((i) => Number.isInteger(i) && i >= 0 && i < count)) return false;
  if (!e.sh.every((x) => Array.isArray(x) && Number.isInteger(x[0]) && x[0] >= 0 && x[0] < count && typeof x[1] === 'string')) return false;
  return e.end === undefined || (validFigures(e.end, models) && validIds(e.end, e.end.m.length));
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

/** Hashes of the head and of the bytes just before `size`; null when the file cannot be opened. */
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

interface Loaded {
  head: CacheHead | null;
  /** The ids section, parsed on first use; null when it is damaged (then the cache is not used for keys). */
  keys: () => KeySection | null;
  ignored?: string;
}

function loadCache(file: string, projectsDir: string): Loaded {
  const none = (ignored?: string): Loaded => ({ head: null, keys: () => null, ...(ignored ? { ignored } : {}) });
  let buf: Buffer;
  try {
    buf = readFileSync(file);
  } catch {
    return none(); // none yet
  }
  const nl = buf.indexOf(10);
  let c: CacheHead;
  try {
    if (nl < 0) throw new Error('one line');
    c = JSON.parse(buf.toString('utf8', 0, nl)) as CacheHead;
  } catch {
    return none('corrupt (not JSON)');
  }
  if (c === null || typeof c !== 'object' || c.format !== CACHE_FORMAT || c.app !== VERSION) return none(`from another version (format ${String((c as Partial<CacheHead> | null)?.format)}, claude-metrics ${String((c as Partial<CacheHead> | null)?.app)})`);
  if (c.dir !== resolve(projectsDir) || !Array.isArray(c.models) || !c.models.every((m) => typeof m === 'string') || c.files === null || typeof c.files !== 'object') return none('corrupt (shape)');
  let keys: KeySection | null | undefined;
  return {
    head: c,
    keys: () => {
      if (keys !== undefined) return keys;
      try {
        const k = JSON.parse(buf.toString('utf8', nl + 1)) as KeySection;
        keys = k !== null && typeof k === 'object' ? k : null;
      } catch {
        keys = null;
      }
      return keys;
    },
  };
}

/** One file's usage this run. */
interface FileState {
  rel: string;
  /** What the cache keeps of it (the old entry when it was served unchanged). */
  entry: Entry;
  /** Every line's figures: the settled ones, with the unterminated last line folded in. */
  lines: Figures;
  /** The ids of `lines`, known for a file read now or one with an unterminated line; else in the cache's ids section. */
  ids?: Pick<Columns, 'mid' | 'rid'>;
  /** The ids of its settled lines, for writing the cache (those of a file read now). */
  settledIds?: Pick<Columns, 'mid' | 'rid'>;
}

/** The winners, then the lines without a message id, as collect.ts orders them; `each` fills one scratch line per call. */
export interface CachedUsage {
  each(fn: (line: ReportLine, file: number) => void): void;
  malformed: number;
  stats: CacheStats;
}

const freshStats = (): CacheStats => ({ unchanged: 0, appended: 0, whole: 0, dropped: 0, bytesRead: 0 });

/** A listing kept in the cache, checked before it is trusted. */
function validListing(l: DirListing | undefined): l is DirListing {
  return (
    l !== undefined &&
    l !== null &&
    typeof l === 'object' &&
    typeof l.ino === 'number' &&
    typeof l.mtimeMs === 'number' &&
    typeof l.readMs === 'number' &&
    Array.isArray(l.names) &&
    Array.isArray(l.isDir) &&
    l.names.length === l.isDir.length &&
    l.names.every((n) => typeof n === 'string' && n !== '' && !n.includes('/') && n !== '.' && n !== '..') &&
    l.isDir.every((d) => d === 0 || d === 1)
  );
}

/** The cache of one projects directory, opened before the tree is listed (its directory listings speed the walk). */
export interface UsageCache {
  dirs: DirMemo;
  collect(files: readonly TranscriptFile[]): CachedUsage;
}

export function openUsageCache(projectsDir: string, cacheFile: string): UsageCache {
  const loaded = loadCache(cacheFile, projectsDir);
  const oldDirs = loaded.head && loaded.head.dirs !== null && typeof loaded.head.dirs === 'object' ? loaded.head.dirs : {};
  const dirs: Record<string, DirListing> = {};
  let dirsRead = 0;
  const memo: DirMemo = {
    racyMs: RACY_MS,
    get(rel) {
      const l = Object.prototype.hasOwnProperty.call(oldDirs, rel) ? oldDirs[rel] : undefined;
      if (!validListing(l)) return undefined;
      dirs[rel] = l; // seen this walk: kept
      return l;
    },
    set(rel, listing) {
      dirs[rel] = listing;
      dirsRead++;
    },
  };
  return {
    dirs: memo,
    collect: (files) => {
      const dirsChanged = dirsRead > 0 || Object.keys(oldDirs).some((rel) => !Object.prototype.hasOwnProperty.call(dirs, rel));
      return cachedUsage(projectsDir, files, cacheFile, loaded, dirs, dirsChanged);
    },
  };
}

/**
 * Every file's lines, from the cache where its bytes are known and read where
 * not, folded across files; then the cache is written back if anything changed
 * (best effort: a cache that cannot be written only costs the next run its speed).
 */
function cachedUsage(projectsDir: string, files: readonly TranscriptFile[], cacheFile: string, opened: Loaded, dirs: Record<string, DirListing>, dirsChanged: boolean): CachedUsage {
  const root = resolve(projectsDir);
  let loaded = opened;
  let models = new Models(loaded.head?.models ?? []);
  let states = files.map((f) => fileState(f, loaded, models));
  let stats = freshStats();
  const count = () => {
    stats = freshStats();
    for (const s of states) stats[s.how]++;
    stats.bytesRead = states.reduce((n, s) => n + s.bytesRead, 0);
    const listed = new Set(files.map((f) => f.relPath));
    if (loaded.head) for (const rel of Object.keys(loaded.head.files)) if (!listed.has(rel)) stats.dropped++;
  };
  count();
  let changed = loaded.head === null || dirsChanged || stats.appended + stats.whole + stats.dropped > 0;
  // A run that folds new keys or writes the cache needs the ids of the unchanged files too:
  // if the ids section is damaged, the cache is of no use and every file is read.
  if (changed && loaded.head !== null && states.some((s) => s.how === 'unchanged' && !s.state.ids && !idsOf(loaded, s.state.rel, s.state.entry.m.length))) {
    loaded = { head: null, keys: () => null, ignored: 'corrupt (ids)' };
    models = new Models([]);
    states = files.map((f) => fileState(f, loaded, models));
    count();
    changed = true;
  }
  if (loaded.ignored) stats.ignored = loaded.ignored;
  const fs = states.map((s) => s.state);

  // Keys of the files read now: a key cached as seen in one file only may be in one of them too.
  const fresh = new Set<string>();
  for (const s of fs) {
    if (!s.ids) continue;
    for (let i = 0; i < s.ids.mid.length; i++) if (s.ids.mid[i] !== null) fresh.add(`${s.ids.mid[i]}\u0000${s.ids.rid[i]}`);
  }
  // Winners as (file, line) in first-seen order; the map holds only keys that may be in several files.
  const winFile: number[] = [];
  const winLine: number[] = [];
  const byKey = new Map<string, { slot: number; file: number; many: boolean }>();
  const mapped: Array<Array<string | undefined>> = fs.map(() => []);
  const undeduped: Array<[number, number]> = [];
  let malformed = 0;
  fs.forEach((s, file) => {
    malformed += s.entry.malformed;
    const count = s.lines.m.length;
    const viaIds = s.ids;
    const cached = viaIds ? undefined : idsLater(loaded, s.rel, count, fresh.size > 0);
    const u = viaIds ? undefined : s.entry.u;
    const sh = viaIds ? undefined : s.entry.sh;
    let ui = 0;
    let si = 0;
    for (let i = 0; i < count; i++) {
      let key: string | undefined;
      if (viaIds) {
        if (viaIds.mid[i] === null) {
          undeduped.push([file, i]);
          continue;
        }
        key = `${viaIds.mid[i]}\u0000${viaIds.rid[i]}`;
      } else {
        if (ui < u!.length && u![ui] === i) {
          ui++;
          undeduped.push([file, i]);
          continue;
        }
        if (si < sh!.length && sh![si]![0] === i) key = sh![si++]![1];
        else if (cached) {
          const k = `${cached.mid[i]}\u0000${cached.rid[i]}`;
          if (fresh.has(k)) key = k;
        }
      }
      if (key === undefined) {
        // Seen in this file only, at the last write and in every file read since.
        winFile.push(file);
        winLine.push(i);
        continue;
      }
      mapped[file]![i] = key;
      const w = byKey.get(key);
      if (w === undefined) {
        byKey.set(key, { slot: winFile.length, file, many: false });
        winFile.push(file);
        winLine.push(i);
      } else {
        if (w.file !== file) w.many = true;
        if (totalOf(s.lines, i) > totalOf(fs[winFile[w.slot]!]!.lines, winLine[w.slot]!)) {
          winFile[w.slot] = file;
          winLine[w.slot] = i;
        }
      }
    }
  });

  if (changed) {
    const head: Record<string, Entry> = {};
    const ids: KeySection = {};
    fs.forEach((s, file) => {
      const settled = s.settledIds ?? idsOf(loaded, s.rel, s.entry.m.length)!;
      const keys = mapped[file]!;
      const u: number[] = [];
      const sh: Array<[number, string]> = [];
      // Settled lines only: a file with an unterminated last line goes through the map anyway.
      for (let i = 0; i < s.entry.m.length; i++) {
        if (settled.mid[i] === null) u.push(i);
        else if (keys[i] !== undefined && byKey.get(keys[i]!)!.many) sh.push([i, keys[i]!]);
      }
      head[s.rel] = { ...s.entry, u, sh };
      ids[s.rel] = { mid: settled.mid, rid: settled.rid };
    });
    const text = `${JSON.stringify({ format: CACHE_FORMAT, app: VERSION, dir: root, models: models.names, files: head, dirs } satisfies CacheHead)}\n${JSON.stringify(ids)}\n`;
    if (!writeCache(cacheFile, text)) stats.writeFailed = true;
  }

  const names = models.names;
  return {
    malformed,
    stats,
    each(fn) {
      const tokens: Tokens = { input_tokens: 0, output_tokens: 0, cache_creation_input_tokens: 0, cache_read_input_tokens: 0 };
      const line: ReportLine = { key: null, model: '', tokens, total: 0, timestamp: '', costUSD: null };
      const emit = (file: number, i: number) => {
        const c = fs[file]!.lines;
        tokens.input_tokens = c.n[4 * i]!;
        tokens.output_tokens = c.n[4 * i + 1]!;
        tokens.cache_creation_input_tokens = c.n[4 * i + 2]!;
        tokens.cache_read_input_tokens = c.n[4 * i + 3]!;
        line.total = tokens.input_tokens + tokens.output_tokens + tokens.cache_creation_input_tokens + tokens.cache_read_input_tokens;
        line.model = names[c.m[i]!]!;
        line.timestamp = c.ts[i]!;
        line.costUSD = c.c[i]!;
        fn(line, file);
      };
      for (let w = 0; w < winFile.length; w++) emit(winFile[w]!, winLine[w]!);
      for (const [file, i] of undeduped) emit(file, i);
    },
  };
}

/** The ids of a cached file's settled lines, or null when the ids section lacks them. */
function idsOf(loaded: Loaded, rel: string, count: number): Pick<Columns, 'mid' | 'rid'> | null {
  const k = loaded.keys()?.[rel];
  return k !== undefined && validIds(k, count) ? k : null;
}

/** A cached file's ids, needed only to look its keys up among those of files read now. */
function idsLater(loaded: Loaded, rel: string, count: number, needed: boolean): Pick<Columns, 'mid' | 'rid'> | undefined {
  return needed ? (idsOf(loaded, rel, count) ?? undefined) : undefined;
}

/** How one file is known this run: from the cache as it was, its tail read, or read whole. */
function fileState(f: TranscriptFile, loaded: Loaded, models: Models): { state: FileState; how: 'unchanged' | 'appended' | 'whole'; bytesRead: number } {
  const rel = f.relPath;
  const readMs = Date.now();
  const files = loaded.head?.files ?? {};
  const old = Object.prototype.hasOwnProperty.call(files, rel) ? files[rel] : undefined;
  const sameFile = old !== undefined && old.dev === f.dev && old.ino === f.ino && validEntry(old, models.names.length);
  if (sameFile && old.size === f.size && old.mtimeMs === f.mtimeMs && old.mtimeMs < old.readMs - RACY_MS) {
    if (!old.end) return { state: { rel, entry: old, lines: old }, how: 'unchanged', bytesRead: 0 };
    const ids = idsOf(loaded, rel, old.m.length);
    if (ids) {
      const full = foldedCopy({ ...old, ...ids }, old.end);
      return { state: { rel, entry: old, lines: full, ids: full }, how: 'unchanged', bytesRead: 0 };
    }
    // its ids are lost: read it again
  }
  const grown = sameFile && f.size > old.size ? probes(f.path, old.size) : null;
  const oldIds = sameFile && grown && grown.head === old.head && grown.tail === old.tail ? idsOf(loaded, rel, old.m.length) : null;
  let settled: Columns;
  let end: Columns;
  let resume: number;
  let malformed: number;
  let how: 'appended' | 'whole';
  let bytesRead: number;
  if (sameFile && oldIds) {
    const tail = read(f.path, old.resume, models);
    settled = { mid: [...oldIds.mid], rid: [...oldIds.rid], m: [...old.m], ts: [...old.ts], n: [...old.n], c: [...old.c] };
    fold(settled, tail.settled);
    ({ end, resume } = tail);
    malformed = old.malformed + tail.malformed;
    bytesRead = f.size - old.resume;
    how = 'appended';
  } else {
    const whole = read(f.path, 0, models);
    settled = emptyColumns();
    fold(settled, whole.settled);
    ({ end, resume, malformed } = whole);
    bytesRead = f.size;
    how = 'whole';
  }
  // The probes are of the size listed, so the next run compares the bytes it was told about.
  const p = probes(f.path, f.size) ?? { head: '', tail: '' };
  const entry: Entry = { dev: f.dev, ino: f.ino, size: f.size, mtimeMs: f.mtimeMs, readMs, head: p.head, tail: p.tail, resume, malformed, m: settled.m, ts: settled.ts, n: settled.n, c: settled.c, u: [], sh: [], ...(end.mid.length > 0 ? { end } : {}) };
  const lines = end.mid.length > 0 ? foldedCopy(settled, end) : settled;
  return { state: { rel, entry, lines, ids: lines, settledIds: settled }, how, bytesRead };
}

/** A file's settled lines with its unterminated last line folded in (a copy: the settled ones are kept as they are). */
function foldedCopy(settled: Columns, end: Columns): Columns {
  const out = emptyColumns();
  fold(out, settled);
  fold(out, end);
  return out;
}

function writeCache(file: string, text: string): boolean {
  const dir = join(file, '..');
  const tmp = `${file}.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`;
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    writeFileSync(tmp, text, { mode: 0o600 });
    renameSync(tmp, file);
  } catch {
    try {
      rmSync(tmp, { force: true }); // a full disk leaves it created and empty
    } catch {
      /* never created: its directory could not be */
    }
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
