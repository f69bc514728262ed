/**
 * The outcome of a `claude -p` run from its stdout: `--output-format json`
 * prints one result object; `stream-json` prints lines, the last of type
 * "result". Pure; tolerant of anything else (a plain-text run has no result).
 */

export interface ClaudeResult {
  subtype?: string;
  is_error?: boolean;
  num_turns?: number;
  duration_ms?: number;
  duration_api_ms?: number;
  total_cost_usd?: number;
  session_id?: string;
  usage?: { input_tokens?: number; output_tokens?: number; cache_creation_input_tokens?: number; cache_read_input_tokens?: number };
  model?: string;
}

function fromObject(o: unknown): ClaudeResult | null {
  if (!o || typeof o !== 'object' || Array.isArray(o)) return null;
  const r = o as Record<string, unknown>;
  if (r.type !== 'result') return null;
  const num = (v: unknown) => (typeof v === 'number' && Number.isFinite(v) ? v : undefined);
  const u = r.usage && typeof r.usage === 'object' ? (r.usage as Record<string, unknown>) : undefined;
  const models = r.modelUsage && typeof r.modelUsage === 'object' ? Object.keys(r.modelUsage as object) : [];
  return {
    subtype: typeof r.subtype === 'string' ? r.subtype : undefined,
    is_error: typeof r.is_error === 'boolean' ? r.is_error : undefined,
    num_turns: num(r.num_turns),
    duration_ms: num(r.duration_ms),
    duration_api_ms: num(r.duration_api_ms),
    total_cost_usd: num(r.total_cost_usd),
    session_id: typeof r.session_id === 'string' ? r.session_id : undefined,
    usage: u
      ? { input_tokens: num(u.input_tokens), output_tokens: num(u.output_tokens), cache_creation_input_tokens: num(u.cache_creation_input_tokens), cache_read_input_tokens: num(u.cache_read_input_tokens) }
      : undefined,
    model: models.length > 0 ? models[models.length - 1] : undefined,
  };
}

export function parseClaudeResult(stdout: string): ClaudeResult | null {
  const text = stdout.trim();
  if (!text) return null;
  if (text.startsWith('{') && text.endsWith('}')) {
    try {
      const whole = fromObject(JSON.parse(text));
      if (whole) return whole;
    } catch {
      /* several lines: stream-json */
    }
  }
  const lines = text.split('\n');
  for (let i = lines.length - 1; i >= 0; i--) {
    const l = lines[i]!.trim();
    if (!l.startsWith('{') || !l.includes('"result"')) continue;
    try {
      const r = fromObject(JSON.parse(l));
      if (r) return r;
    } catch {
      /* not JSON */
    }
  }
  return null;
}

/** Keeps the last `max` bytes of a stream: the result comes last. */
export class TailBuffer {
  private chunks: Buffer[] = [];
  private size = 0;
  constructor(private readonly max: number) {}
  push(c: Buffer): void {
    this.chunks.push(c);
    this.size += c.length;
    while (this.size - (this.chunks[0]?.length ?? 0) >= this.max && this.chunks.length > 1) this.size -= this.chunks.shift()!.length;
  }
  toString(): string {
    return Buffer.concat(this.chunks).toString('utf8');
  }
}
