/**
 * `claude-metrics show <session | task | run id>`: one session's timeline as
 * text (aligned columns, failures marked), or `--json` ({session, steps}) for
 * scripts. Reads the collector's API; exit 1 for an unknown id or a refusal,
 * 75 when the collector is unreachable.
 */
import { resolveConfig } from '../config';
import { ConfigError, UsageError } from '../errors';
import { baseUrl, getJson, type ClientOptions } from '../collector/client';
import type { SessionHeader, Step, StepsPage } from '../collector/session-api';
import { headerText, stepRows, table } from '../collector/timeline-text';

export function clientFrom(opts: Record<string, unknown>): ClientOptions {
  const resolved = resolveConfig({ configFile: opts.config as string | undefined, flags: { endpoint: opts.endpoint, token: opts.token } });
  if (resolved.errors.length > 0) throw new ConfigError(resolved.errors.join('; '));
  return { base: baseUrl(resolved.config.endpoint), token: resolved.config.token };
}

export default async function show(opts: Record<string, unknown>, args: string[]): Promise<number> {
  const id = args[0];
  if (!id) throw new UsageError('show: which session? pass a session, task or run id (see `claude-metrics tail` or the dashboard)');
  const c = clientFrom(opts);
  const path = `/api/sessions/${encodeURIComponent(id)}`;
  const header = await getJson<SessionHeader>(c, path, `session ${id}`);
  const steps: Step[] = [];
  let after = '';
  for (let i = 0; i < 10_000; i++) {
    const page = await getJson<StepsPage>(c, `/api/sessions/${encodeURIComponent(header.id)}/events?limit=5000${after ? `&after=${encodeURIComponent(after)}` : ''}`, `session ${id}`);
    steps.push(...page.steps);
    if (!page.next) break;
    after = page.next;
  }
  if (opts.json) {
    process.stdout.write(`${JSON.stringify({ session: header, steps })}\n`);
    return 0;
  }
  const t0 = steps.length ? steps[0]!.at_ms : Date.parse(header.started_at ?? '') || 0;
  const out = [headerText(header), ''];
  if (header.matches.length) out.splice(1, 0, `(also matches: ${header.matches.join(', ')})`);
  out.push(steps.length ? table(stepRows(steps, t0), ['when', '', 'kind', 'step', 'duration', 'detail'], new Set([0, 4])) : '(no steps recorded)');
  const failed = steps.filter((s) => s.status === 'failed' || (s.kind !== 'tool' && s.error)).length;
  out.push('', `${steps.length} steps${failed ? `, ${failed} failed (✗)` : ''} · ${c.base}/sessions/${encodeURIComponent(header.id)}`);
  process.stdout.write(`${out.join('\n')}\n`);
  return 0;
}
