/**
 * doctor's view of Claude Code's OpenTelemetry export: which settings scope
 * turns it on, where it points, whether that collector takes an OTLP export
 * (an empty one, which stores nothing), and which models the collector saw
 * without a price.
 */
import { readFileSync } from 'node:fs';
import { otelState } from './otel-env';

export interface OtelFacts {
  scope: string;
  path: string;
  ours: boolean;
  enabled: boolean;
  endpoint?: string;
  protocol?: string;
  /** POST {endpoint}/v1/logs with an empty export. */
  probe?: { status?: number; error?: string };
}

function request(url: string, method: 'GET' | 'POST', body: string | undefined, token: string | undefined, timeoutMs: number): Promise<{ status?: number; text?: string; error?: string }> {
  return new Promise((resolve) => {
    let u: URL;
    try {
      u = new URL(url);
    } catch {
      resolve({ error: 'not a valid URL' });
      return;
    }
    const mod = (u.protocol === 'https:' ? require('node:https') : require('node:http')) as typeof import('node:http');
    const headers: Record<string, string> = { 'user-agent': 'claude-metrics-doctor' };
    if (token) headers.authorization = `Bearer ${token}`;
    if (body !== undefined) headers['content-type'] = 'application/json';
    let done = false;
    const finish = (r: { status?: number; text?: string; error?: string }) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      resolve(r);
    };
    const req = mod.request(u, { method, headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.length < 64 && chunks.push(c));
      res.on('end', () => finish({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', (e) => finish({ error: e.message }));
    });
    const timer = setTimeout(() => {
      req.destroy();
      finish({ error: `no answer within ${timeoutMs} ms` });
    }, timeoutMs);
    req.on('error', (e: NodeJS.ErrnoException) => finish({ error: e.code ?? e.message }));
    req.end(body);
  });
}

/** The bearer token in an OTEL_EXPORTER_OTLP_HEADERS value (`Authorization=Bearer x,…`). */
function headerToken(settingsText: string): string | undefined {
  const m = /"OTEL_EXPORTER_OTLP_HEADERS"\s*:\s*"([^"]*)"/.exec(settingsText);
  const auth = m?.[1]?.split(',').find((p) => /^\s*authorization\s*=/i.test(p));
  return auth ? decodeURIComponent(auth.replace(/^\s*authorization\s*=\s*Bearer\s+/i, '').trim()) : undefined;
}

export async function otelFacts(scopes: Array<{ scope: string; path: string }>, timeoutMs: number): Promise<OtelFacts[]> {
  const out: OtelFacts[] = [];
  for (const { scope, path } of scopes) {
    let text: string;
    try {
      text = readFileSync(path, 'utf8');
    } catch {
      continue;
    }
    const st = otelState(text, path);
    if (st.error || (!st.enabled && !st.ours)) continue;
    const f: OtelFacts = { scope, path, ours: st.ours, enabled: st.enabled, endpoint: st.endpoint, protocol: st.protocol };
    if (st.enabled && st.endpoint) {
      const r = await request(`${st.endpoint.replace(/\/$/, '')}/v1/logs`, 'POST', '{"resourceLogs":[]}', headerToken(text), timeoutMs);
      f.probe = { status: r.status, error: r.error };
    }
    out.push(f);
  }
  return out;
}

/** Models the collector has tokens for but no price (GET /api/summary), or undefined when it does not say. */
export async function unpricedModels(collectorBase: string, token: string | undefined, timeoutMs: number): Promise<Array<{ model: string; requests: number }> | undefined> {
  const r = await request(`${collectorBase.replace(/\/$/, '')}/api/summary?since=30d`, 'GET', undefined, token, timeoutMs);
  if (r.status !== 200 || !r.text) return undefined;
  try {
    const v = JSON.parse(r.text) as { unpriced_models?: Array<{ model: string; requests: number }> };
    return Array.isArray(v.unpriced_models) ? v.unpriced_models : undefined;
  } catch {
    return undefined;
  }
}
