/**
 * `claude-metrics usage`: token and cost usage by session from Claude Code's
 * transcripts, equal to ccusage 20's totals. A table for people, `--json` for
 * machines (the shape the tests compare with ccusage).
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { UsageError } from '../errors';
import { resolveConfig } from '../config';
import { claudeConfigDir } from '../paths';
import { PriceTable } from '../transcript/pricing';
import { buildReport, type CostMode, type UsageReport } from '../transcript/report';
import { cacheFileFor } from '../transcript/usage-cache';

/** YYYY-MM-DD or YYYYMMDD → YYYY-MM-DD; throws a UsageError for anything else. */
export function parseDateFlag(name: string, v: unknown): string | undefined {
  if (v === undefined) return undefined;
  const m = /^(\d{4})-?(\d{2})-?(\d{2})$/.exec(String(v));
  if (!m || Number.isNaN(Date.parse(`${m[1]}-${m[2]}-${m[3]}T00:00:00Z`))) throw new UsageError(`${name}: expected a date like 2026-11-25 or 20261125, got ${JSON.stringify(v)}`);
  return `${m[1]}-${m[2]}-${m[3]}`;
}

export function loadPrices(file: unknown): PriceTable {
  if (file === undefined) return new PriceTable();
  try {
    return PriceTable.fromFile(String(file));
  } catch (err) {
    throw new UsageError(`--pricing: ${(err as Error).message}`);
  }
}

export function projectsDirFrom(opt: unknown): string {
  const dir = opt !== undefined ? String(opt) : join(claudeConfigDir(), 'projects');
  if (!existsSync(dir)) throw new UsageError(`no transcripts at ${dir} (set --projects-dir or CLAUDE_CONFIG_DIR)`);
  return dir;
}

export default function usage(opts: Record<string, unknown>): number {
  const mode = (opts.mode as CostMode | undefined) ?? 'auto';
  const projectsDir = projectsDirFrom(opts.projectsDir);
  const report = buildReport(projectsDir, {
    prices: loadPrices(opts.pricing),
    mode,
    since: parseDateFlag('--since', opts.since),
    until: parseDateFlag('--until', opts.until),
    session: opts.session as string | undefined,
    // What was read before, per file, in the state dir (`--no-cache`: every file read whole, the cache left alone).
    cacheFile: opts.cache === false ? undefined : cacheFileFor(join(usageStateDir(opts.config as string | undefined), 'usage-cache'), projectsDir),
  });
  if (opts.json) {
    const round = (v: number) => Math.round(v * 1e9) / 1e9;
    const out = {
      sessions: report.sessions.map((s) => ({ session_id: s.session_id, project: s.project, models: s.models, input_tokens: s.input_tokens, output_tokens: s.output_tokens, cache_creation_input_tokens: s.cache_creation_input_tokens, cache_read_input_tokens: s.cache_read_input_tokens, cost_usd: round(s.cost_usd), last_activity: s.last_activity })),
      totals: { ...report.totals, cost_usd: round(report.totals.cost_usd) },
      // Models without a price: their tokens are in the totals, their cost is not (unknown, not zero).
      unpriced_models: report.unknown_models,
    };
    process.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
  } else {
    process.stdout.write(renderTable(report));
  }
  if (report.unknown_models.length > 0) process.stderr.write(`usage: unpriced model(s) ${report.unknown_models.join(', ')}: their tokens are counted, their cost is not in the totals (unknown, not zero); add prices with --pricing FILE, or see Claude Code's own cost through its OTel export (claude-metrics install --otel)\n`);
  if (report.cache && opts.verbose) {
    const c = report.cache;
    process.stderr.write(`usage: cache: ${c.unchanged} file(s) unchanged, ${c.appended} appended, ${c.whole} read whole, ${c.dropped} gone; ${c.bytesRead} bytes read${c.ignored ? `; the cache file was ${c.ignored}, rebuilt` : ''}${c.writeFailed ? '; could not write it back' : ''}\n`);
  }
  if (report.malformed_lines > 0 && opts.verbose) process.stderr.write(`usage: skipped ${report.malformed_lines} malformed line(s)\n`);
  return 0;
}

/** The state dir (config file, env, default; the private fallback when it cannot be written): the config's other settings do not matter here. */
function usageStateDir(configFile: string | undefined): string {
  return resolveConfig({ configFile, checkStateDir: true }).config.stateDir;
}

const fmt = (n: number) => n.toLocaleString('en-US');

function renderTable(r: UsageReport): string {
  const rows = r.sessions.map((s) => [s.last_activity.slice(0, 16).replace('T', ' '), s.project, s.session_id.slice(0, 36), s.models.join(', '), fmt(s.input_tokens), fmt(s.output_tokens), fmt(s.cache_creation_input_tokens), fmt(s.cache_read_input_tokens), `$${s.cost_usd.toFixed(2)}`]);
  const t = r.totals;
  rows.push(['Total', '', `${r.sessions.length} session(s)`, '', fmt(t.input_tokens), fmt(t.output_tokens), fmt(t.cache_creation_input_tokens), fmt(t.cache_read_input_tokens), `$${t.cost_usd.toFixed(2)}`]);
  const head = ['Last activity', 'Project', 'Session', 'Models', 'Input', 'Output', 'Cache create', 'Cache read', 'Cost'];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => (i >= 4 ? c.padStart(widths[i]!) : c.padEnd(widths[i]!))).join('  ').trimEnd();
  return [line(head), widths.map((w) => '─'.repeat(w)).join('  '), ...rows.slice(0, -1).map(line), widths.map((w) => '─'.repeat(w)).join('  '), line(rows[rows.length - 1]!)].join('\n') + '\n';
}
