/**
 * `claude-metrics tail [--project P] [--source S] [--session ID]`: follows the
 * collector's live stream like `tail -f`, one line per step as it arrives
 * (`--json`: one JSON object per line), until Ctrl-C. Reconnects after a drop
 * with Last-Event-ID, so nothing in between is lost. Exit 75 when the collector
 * cannot be reached at the start, 1 when it refuses (token, bad filter).
 */
import { CliError } from '../errors';
import { getJson, openStream, type ClientOptions } from '../collector/client';
import type { Step, StepsPage } from '../collector/session-api';
import { clean, fmtDuration, stepDetail, stepMark, stepName } from '../collector/timeline-text';
import { clientFrom } from './show';

interface Change {
  seq: number;
  sessions?: Array<{ id: string; project: string | null; label: string | null; source: string | null }>;
}

export default async function tail(opts: Record<string, unknown>): Promise<number> {
  const c: ClientOptions = clientFrom(opts);
  const q = new URLSearchParams();
  for (const k of ['project', 'source', 'label'] as const) if (typeof opts[k] === 'string' && opts[k]) q.set(k, opts[k] as string);
  // A bare Claude Code session, task or run id: the stream filters by the session's key.
  if (typeof opts.session === 'string' && opts.session) q.set('session', (await getJson<{ id: string }>(c, `/api/sessions/${encodeURIComponent(opts.session)}`, `session ${opts.session}`)).id);
  const json = opts.json === true;
  // Each session's live cursor: the first message's sequence number, then what each read returns.
  const cursors = new Map<string, string>();
  let start = '';
  let last: string | undefined;
  let stopping = false;
  let queue = Promise.resolve();
  const print = (sessionId: string, meta: { project: string | null; label: string | null; source: string | null }, s: Step) => {
    if (json) {
      process.stdout.write(`${JSON.stringify({ session_id: sessionId, ...s })}\n`);
      return;
    }
    const who = clean([meta.project, meta.label].filter(Boolean).join('/') || sessionId.replace(/^[a-z]+:/, '').slice(0, 12));
    const time = new Date(s.at_ms).toISOString().slice(11, 19);
    process.stdout.write(`${time}  ${who.padEnd(24).slice(0, 24)}  ${stepMark(s)} ${s.kind.padEnd(8)} ${clean(`${s.agent_id ? '↳ ' : ''}${stepName(s)}`).padEnd(20).slice(0, 20)} ${fmtDuration(s.duration_ms).padStart(8)}  ${clean(stepDetail(s))}\n`);
  };
  const read = async (change: Change) => {
    for (const s of change.sessions ?? []) {
      let after = cursors.get(s.id) ?? start;
      for (let i = 0; i < 100; i++) {
        const page = await getJson<StepsPage>(c, `/api/sessions/${encodeURIComponent(s.id)}/events?limit=1000&after=${encodeURIComponent(after)}`, `session ${s.id}`).catch((err: unknown) => {
          if ((err as CliError).code === 'E_NOT_FOUND') return null; // gone (retention) between the message and the read
          throw err;
        });
        if (!page) break;
        for (const st of page.steps) print(s.id, s, st);
        after = page.live;
        if (!page.next) break;
      }
      cursors.set(s.id, after);
    }
  };
  process.once('SIGINT', () => {
    stopping = true;
    process.exit(0);
  });
  process.once('SIGTERM', () => {
    stopping = true;
    process.exit(0);
  });
  let connected = false;
  for (let attempt = 0; !stopping; attempt++) {
    try {
      await openStream(c, `/api/stream${q.size ? `?${q}` : ''}`, last, (m) => {
        connected = true;
        attempt = 0;
        if (m.id) last = m.id;
        const d = m.data as Change;
        if (m.event === 'hello' && !start) {
          start = String(d.seq);
          if (!json) process.stderr.write(`claude-metrics tail: following ${c.base}${q.size ? ` (${q})` : ''}; Ctrl-C to stop\n`);
        } else if (m.event === 'change') queue = queue.then(() => read(d));
        else if (m.event === 'reset') {
          process.stderr.write('claude-metrics tail: the collector asked to start over (its database changed); following from now\n');
          start = String(d.seq);
          cursors.clear();
        }
      });
    } catch (err) {
      // The first connection failing is an error; later ones are retried.
      if (!connected) throw err;
    }
    await queue.catch((err: unknown) => process.stderr.write(`claude-metrics tail: ${(err as Error).message}\n`));
    if (stopping) break;
    process.stderr.write('claude-metrics tail: stream dropped; reconnecting\n');
    await new Promise((r) => setTimeout(r, Math.min(10_000, 500 * 2 ** Math.min(attempt, 5))));
  }
  return 0;
}
