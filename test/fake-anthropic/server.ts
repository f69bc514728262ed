/**
 * A scripted fake of the Anthropic Messages API, enough for the real Claude Code
 * CLI to run offline: SSE streaming (message_start, content_block_start/delta/
 * stop, message_delta with usage, message_stop), JSON when not streaming,
 * count_tokens, HEAD /. It plays a scenario turn by turn, records every request
 * body (to prove nothing of ours reaches the model) and every usage it served
 * (to check token totals exactly).
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface Usage {
  input_tokens: number;
  output_tokens: number;
  cache_creation_input_tokens: number;
  cache_read_input_tokens: number;
}

export type Turn =
  | { kind: 'tool'; name: string; input: Record<string, unknown>; usage?: Partial<Usage> }
  | { kind: 'text'; text: string; usage?: Partial<Usage> }
  | { kind: 'error'; status: number; type: string; message: string }
  /** Starts the stream (message_start) and then sends nothing more until the server closes: a model mid-answer. */
  | { kind: 'hang'; usage?: Partial<Usage> };

export interface Scenario {
  /** Turns of the main conversation, in order; the last one repeats if Claude Code asks again. */
  main: Turn[];
  /** Turns for requests that carry a subagent's system prompt (the Task tool). */
  subagent?: Turn[];
  /** The model name to report (sets the transcript's model and Claude Code's pricing). */
  model?: string;
}

export interface Served {
  id: string;
  requestId: string;
  model: string;
  usage: Usage;
  subagent: boolean;
}

export interface RecordedRequest {
  method: string;
  url: string;
  body: string;
}

export interface FakeAnthropic {
  url: string;
  requests: RecordedRequest[];
  served: Served[];
  /** Requests now held open by a `hang` turn. */
  hanging(): number;
  /** Sum of what was served, per message (the dedupe key Claude Code writes). */
  totals(): Usage;
  close(): Promise<void>;
  server: Server;
}

const DEFAULT_USAGE: Usage = { input_tokens: 120, output_tokens: 40, cache_creation_input_tokens: 300, cache_read_input_tokens: 900 };

export async function startFakeAnthropic(scenario: Scenario): Promise<FakeAnthropic> {
  const requests: RecordedRequest[] = [];
  const served: Served[] = [];
  let mainIndex = 0;
  let subIndex = 0;
  let seq = 0;
  const hung = new Set<ServerResponse>();

  const handle = (req: IncomingMessage, res: ServerResponse, body: string) => {
    requests.push({ method: req.method ?? '', url: req.url ?? '', body });
    const path = (req.url ?? '/').split('?')[0]!;
    if (req.method === 'HEAD' || path === '/') {
      res.writeHead(200);
      return res.end();
    }
    if (path === '/v1/messages/count_tokens') {
      res.writeHead(200, { 'content-type': 'application/json' });
      return res.end('{"input_tokens":42}');
    }
    if (path !== '/v1/messages') {
      res.writeHead(404, { 'content-type': 'application/json' });
      return res.end('{"type":"error","error":{"type":"not_found_error","message":"not found"}}');
    }
    let parsed: { stream?: boolean; system?: unknown; tools?: unknown[]; model?: string } = {};
    try {
      parsed = JSON.parse(body) as typeof parsed;
    } catch {
      /* answer anyway */
    }
    const system = JSON.stringify(parsed.system ?? '');
    // Claude Code's own side requests (titles, summaries) come without tools: answer briefly, count nothing.
    const isSide = !parsed.tools || parsed.tools.length === 0;
    // Claude Code 2.1.x marks a subagent's requests in its billing header; older ones only by their prompt.
    const marked = system.includes('cc_is_subagent=true');
    const looksSub = system.includes('cc_entrypoint=') ? marked : /general-purpose|You are an agent/i.test(system);
    const isSub = !isSide && scenario.subagent !== undefined && looksSub && subIndex < (scenario.subagent?.length ?? 0);
    let turn: Turn;
    if (isSide) turn = { kind: 'text', text: 'ok', usage: { input_tokens: 1, output_tokens: 1, cache_creation_input_tokens: 0, cache_read_input_tokens: 0 } };
    else if (isSub) turn = scenario.subagent![subIndex++]!;
    else {
      turn = scenario.main[Math.min(mainIndex, scenario.main.length - 1)]!;
      mainIndex++;
    }
    if (turn.kind === 'error') {
      res.writeHead(turn.status, { 'content-type': 'application/json' });
      return res.end(JSON.stringify({ type: 'error', error: { type: turn.type, message: turn.message } }));
    }
    seq++;
    const id = `msg_fake_${seq}`;
    const requestId = `req_fake_${seq}`;
    const model = scenario.model ?? parsed.model ?? 'claude-sonnet-4-5-20250929';
    const usage: Usage = { ...DEFAULT_USAGE, ...(turn.usage ?? {}) };
    // A hung answer never completes, so nothing of it counts as served.
    if (!isSide && turn.kind !== 'hang') served.push({ id, requestId, model, usage, subagent: isSub });
    const stopReason = turn.kind === 'tool' ? 'tool_use' : 'end_turn';
    const startUsage = { input_tokens: usage.input_tokens, cache_creation_input_tokens: usage.cache_creation_input_tokens, cache_read_input_tokens: usage.cache_read_input_tokens, output_tokens: 1 };
    const content = turn.kind === 'tool' ? [{ type: 'tool_use', id: `toolu_fake_${seq}`, name: turn.name, input: turn.input }] : turn.kind === 'text' ? [{ type: 'text', text: turn.text }] : [];
    if (parsed.stream === false && turn.kind !== 'hang') {
      res.writeHead(200, { 'content-type': 'application/json', 'request-id': requestId });
      return res.end(JSON.stringify({ id, type: 'message', role: 'assistant', model, content, stop_reason: stopReason, stop_sequence: null, usage }));
    }
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', 'request-id': requestId });
    const ev = (type: string, data: Record<string, unknown>) => res.write(`event: ${type}\ndata: ${JSON.stringify({ type, ...data })}\n\n`);
    ev('message_start', { message: { id, type: 'message', role: 'assistant', model, content: [], stop_reason: null, stop_sequence: null, usage: startUsage } });
    if (turn.kind === 'hang') {
      hung.add(res);
      res.on('close', () => hung.delete(res));
      return;
    }
    if (turn.kind === 'tool') {
      ev('content_block_start', { index: 0, content_block: { type: 'tool_use', id: `toolu_fake_${seq}`, name: turn.name, input: {} } });
      ev('content_block_delta', { index: 0, delta: { type: 'input_json_delta', partial_json: JSON.stringify(turn.input) } });
    } else {
      ev('content_block_start', { index: 0, content_block: { type: 'text', text: '' } });
      ev('content_block_delta', { index: 0, delta: { type: 'text_delta', text: turn.text } });
    }
    ev('content_block_stop', { index: 0 });
    ev('message_delta', { delta: { stop_reason: stopReason, stop_sequence: null }, usage: { output_tokens: usage.output_tokens } });
    ev('message_stop', {});
    res.end();
  };

  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => handle(req, res, Buffer.concat(chunks).toString('utf8')));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    served,
    server,
    hanging: () => hung.size,
    totals() {
      const t: Usage = { input_tokens: 0, output_tokens: 0, cache_creation_input_tokens: 0, cache_read_input_tokens: 0 };
      for (const s of served) for (const k of Object.keys(t) as Array<keyof Usage>) t[k] += s.usage[k];
      return t;
    },
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}
