/**
 * A session's steps as text for the terminal (`show`, `tail`): aligned columns,
 * failures marked, subagent steps indented under their Agent call. Pure.
 */
import type { SessionHeader, Step } from './session-api';

export function fmtDuration(ms: number | null | undefined): string {
  if (ms === null || ms === undefined) return '';
  if (ms < 1000) return `${Math.round(ms)} ms`;
  const s = ms / 1000;
  if (s < 59.5) return `${s.toFixed(s < 10 ? 1 : 0)} s`;
  const t = Math.round(s);
  const m = Math.floor(t / 60);
  if (m < 60) return `${m}m${String(t % 60).padStart(2, '0')}s`;
  return `${Math.floor(m / 60)}h${String(m % 60).padStart(2, '0')}m`;
}

export function fmtOffset(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const ss = String(s % 60).padStart(2, '0');
  return h ? `+${h}:${String(m).padStart(2, '0')}:${ss}` : `+${m}:${ss}`;
}

const tokens = (s: { input_tokens: number | null; output_tokens: number | null; cache_creation_input_tokens: number | null; cache_read_input_tokens: number | null }) =>
  (s.input_tokens ?? 0) + (s.output_tokens ?? 0) + (s.cache_creation_input_tokens ?? 0) + (s.cache_read_input_tokens ?? 0);

const fmtCost = (v: number | null | undefined) => (v === null || v === undefined ? '' : `$${v < 1 ? v.toFixed(4) : v.toFixed(2)}`);

/** Control characters would let a hostile string move the cursor or recolour the terminal. */
export function clean(v: string): string {
  // eslint-disable-next-line no-control-regex
  return v.replace(/[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/g, '?').replace(/\n/g, ' ');
}

export function stepName(s: Step): string {
  if (s.kind === 'tool') return s.tool_name ?? 'tool';
  if (s.kind === 'request') return s.model ?? 'request';
  if (s.kind === 'wait') return s.notification_type ?? s.event;
  return s.event;
}

export function stepMark(s: Step): string {
  if (s.status === 'failed' || (s.kind !== 'tool' && s.error)) return '✗';
  if (s.status === 'ok') return '✓';
  if (s.status === 'unfinished') return '…';
  if (s.status === 'denied') return '⊘';
  if (s.kind === 'wait') return '⏸';
  return ' ';
}

export function stepDetail(s: Step): string {
  if (s.error) return s.error;
  if (s.kind === 'request') return `${tokens(s)} tok ${fmtCost(s.cost_usd)}`.trim();
  if (s.kind === 'prompt') return s.prompt ?? (s.prompt_length !== null ? `${s.prompt_length} chars` : '');
  if (s.status === 'denied') return 'no result (denied or interrupted)';
  if (s.wait_ms) return `waited ${fmtDuration(s.wait_ms)} for a person`;
  return s.message ?? s.reason ?? '';
}

/** Rows of the table, subagent steps indented. */
export function stepRows(steps: Step[], t0: number): string[][] {
  return steps.map((s) => [fmtOffset(s.at_ms - t0), stepMark(s), s.kind, `${s.agent_id ? '  ↳ ' : ''}${clean(stepName(s))}`, fmtDuration(s.duration_ms), clean(stepDetail(s))]);
}

/** Columns padded to their widest cell; the last one left free. Right-aligned where `right` says. */
export function table(rows: string[][], head: string[], right: Set<number>): string {
  const all = [head, ...rows];
  const width = head.map((_, i) => Math.max(...all.map((r) => [...(r[i] ?? '')].length)));
  const line = (r: string[]) =>
    r
      .map((c, i) => {
        if (i === r.length - 1) return c;
        const pad = ' '.repeat(width[i]! - [...c].length);
        return right.has(i) ? pad + c : c + pad;
      })
      .join('  ')
      .trimEnd();
  return all.map(line).join('\n');
}

export function headerText(h: SessionHeader): string {
  const outcome = h.active ? 'running' : h.success === true ? 'success' : h.success === false ? 'FAILED' : 'no outcome';
  const kv: Array<[string, string | number | null | undefined]> = [
    ['session', h.id],
    ['outcome', `${outcome}${h.end_reason ? ` (${h.end_reason})` : ''}`],
    ['source', h.source],
    ['project', h.project],
    ['label', h.label],
    ['task', h.task_id],
    ['claude session', h.claude_session_id],
    ['started', h.started_at],
    ['duration', fmtDuration(h.duration_ms ?? (h.started_at && h.last_seen_at ? Date.parse(h.last_seen_at) - Date.parse(h.started_at) : null))],
    ['tool calls', `${h.tool_calls_count}${h.tool_failures ? ` (${h.tool_failures} failed)` : ''}`],
    ['tokens', `${tokens(h)} (in ${h.input_tokens}, out ${h.output_tokens}, cache write ${h.cache_creation_input_tokens}, cache read ${h.cache_read_input_tokens})`],
    ['cost', `${fmtCost(h.cost_usd) || '$0'} (${h.cost_source}${h.sources.disagree ? '; sources disagree' : ''}${h.sources.unpriced_models.length ? `; no price for ${h.sources.unpriced_models.join(', ')}` : ''})`],
    ['model', h.model],
    ['host', [h.user, h.host].filter(Boolean).join('@') || null],
    ['cwd', h.cwd],
    ['git', [h.git_branch, h.git_commit?.slice(0, 10)].filter(Boolean).join(' @ ') || null],
    ['claude code', h.claude_version],
    ['error', h.error],
  ];
  const w = Math.max(...kv.map(([k]) => k.length));
  return kv
    .filter(([, v]) => v !== null && v !== undefined && v !== '')
    .map(([k, v]) => `${k.padEnd(w)}  ${clean(String(v))}`)
    .join('\n');
}
