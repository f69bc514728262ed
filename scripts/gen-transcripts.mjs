#!/usr/bin/env node
// A deterministic Claude Code projects tree (what ~/.claude/projects holds), for the tests and the
// benches, with the token totals ccusage 20 reports for it printed on stdout.
//
//   node scripts/gen-transcripts.mjs --out DIR/projects [--mb 2] [--seed 1] [--projects 4]
//
// The same arguments give the same bytes (seeded mulberry32 PRNG, fixed clock). ccusage wants
// CLAUDE_CONFIG_DIR = the parent of the projects directory, hence `--out DIR/projects`.
//
// Shaped like real transcripts (test/fixtures/transcripts/): user prompts; assistant responses written
// one line per content block, every line repeating the response's message.id / requestId and usage
// (Claude Code streams that way; earlier lines may carry a smaller output count); tool_use /
// tool_result pairs; summary lines; subagent transcripts in <session>/subagents/agent-*.jsonl with
// a .meta.json beside some; several models in a session. And the cases a reader has to get right:
//   - responses without a requestId (deduplicated on message.id alone),
//   - usage lines without a message.id (never deduplicated: each counts),
//   - usage lines without a timestamp (ccusage skips them, even when they are the largest repeat),
//   - usage lines serialized with spaces (`"usage": {`), which ccusage 20 does not see,
//   - zero-usage <synthetic> API-error lines, and a torn last line (no newline) after a crash.
//
// The expectation is computed from what is written by applying ccusage 20.0.24's rules
// (test/fixtures/transcripts/README.md): key message.id + requestId, or message.id alone; among
// repeats the line with the largest input+output+cache total wins (ties: the first); lines without
// a timestamp or in spaced JSON are not counted; a session is the file name, or the <session>
// directory for subagent files. No response repeats across files, so per-session totals do not
// depend on the order files are read in.
import fs from 'node:fs';
import path from 'node:path';

const argv = process.argv.slice(2);
const arg = (k, d) => {
  const i = argv.indexOf(`--${k}`);
  return i >= 0 && i + 1 < argv.length ? argv[i + 1] : d;
};
const out = arg('out');
const mb = Number(arg('mb', 2));
const seed = Number(arg('seed', 1));
const nProjects = Number(arg('projects', 4));
if (!out || !(mb > 0) || !Number.isInteger(seed) || !(Number.isInteger(nProjects) && nProjects > 0)) {
  console.error('usage: node scripts/gen-transcripts.mjs --out DIR/projects [--mb N] [--seed INT] [--projects N]');
  process.exit(2);
}

let st = (seed >>> 0) ^ 0x9e3779b9;
const rnd = () => {
  st = (st + 0x6d2b79f5) >>> 0;
  let t = st;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
};
const int = (a, b) => a + Math.floor(rnd() * (b - a + 1));
const pick = (a) => a[Math.floor(rnd() * a.length)];
const chars = (alphabet, n) => {
  let s = '';
  for (let i = 0; i < n; i++) s += alphabet[Math.floor(rnd() * alphabet.length)];
  return s;
};
const HEX = '0123456789abcdef';
const B62 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
const uuid = () => `${chars(HEX, 8)}-${chars(HEX, 4)}-4${chars(HEX, 3)}-${pick(['8', '9', 'a', 'b'])}${chars(HEX, 3)}-${chars(HEX, 12)}`;
const MODELS = ['claude-sonnet-4-20250514', 'claude-opus-4-20250514', 'claude-3-5-haiku-20241022', 'claude-sonnet-4-5-20250929', 'claude-opus-4-1-20250805', 'claude-haiku-4-5-20251001'];
const TOOLS = ['Bash', 'Read', 'Edit', 'Write', 'Grep', 'Glob', 'TodoWrite', 'Task'];
const WORDS = 'the of and to in is that for it with as was on be at by this not are but from or have an they which one you were all would their we been has when who will more no if out so what up its about into than them can only other new some could time these two may then do first any my now such like our over even most made after also did many before must through back where much your way well down should because each just those people how too little state good very make world still own see work long get here between both function const return import export async await'.split(' ');
const text = (n) => {
  const w = [];
  for (let i = 0; i < n; i++) w.push(pick(WORDS));
  return w.join(' ');
};

const KINDS = ['input_tokens', 'output_tokens', 'cache_creation_input_tokens', 'cache_read_input_tokens'];
const zero = () => ({ input_tokens: 0, output_tokens: 0, cache_creation_input_tokens: 0, cache_read_input_tokens: 0 });
const stats = { projects: 0, sessions: 0, files: 0, subagent_files: 0, meta_files: 0, bytes: 0, lines: 0, usage_lines: 0, responses: 0, repeat_lines: 0, no_request_id_responses: 0, no_message_id_lines: 0, no_timestamp_lines: 0, spaced_lines: 0, synthetic_lines: 0, torn_last_lines: 0, models: 0 };

// ccusage 20's rule, applied to the records as they are written.
const best = new Map(); // dedupe key -> { session, model, u, total }
const undeduped = []; // usage lines without message.id
function count(session, line) {
  const m = line.message;
  const u = Object.fromEntries(KINDS.map((k) => [k, m.usage[k] ?? 0]));
  const rec = { session, model: m.model ?? 'unknown', u, total: KINDS.reduce((a, k) => a + u[k], 0) };
  if (!m.id) return void undeduped.push(rec);
  const key = `${m.id}\u0000${line.requestId ?? ''}`;
  const prev = best.get(key);
  if (!prev || rec.total > prev.total) best.set(key, rec);
}

const t0 = Date.parse('2025-06-01T00:00:00.000Z');
const projects = Array.from({ length: nProjects }, (_, i) => `-home-dev-${pick(['work', 'src', 'code'])}-project-${i}`);
const iso = (ms) => new Date(ms).toISOString();

/** One conversation: returns the lines (objects, or raw strings for lines written verbatim). */
function conversation(ctx, ts, turns) {
  const lines = [];
  let parent = null;
  const common = () => ({ parentUuid: parent, isSidechain: ctx.sidechain, userType: 'external', cwd: ctx.cwd, sessionId: ctx.sessionId, version: ctx.version, ...(ctx.agentId ? { agentId: ctx.agentId } : {}) });
  const push = (o, counted = true) => {
    lines.push(o);
    if (typeof o === 'object' && o.message?.usage) {
      stats.usage_lines++;
      if (counted && o.timestamp) count(ctx.session, o);
    }
    if (typeof o === 'object' && o.uuid) parent = o.uuid;
  };
  for (let t = 0; t < turns; t++) {
    ts += int(1000, 30000);
    push({ ...common(), type: 'user', message: { role: 'user', content: text(int(5, 60)) }, uuid: uuid(), timestamp: iso(ts) });
    const steps = int(1, 4); // API calls in this turn (the tool loop)
    for (let k = 0; k < steps; k++) {
      const model = rnd() < 0.8 ? ctx.model : pick(MODELS);
      stats.responses++;
      const r = rnd();
      if (r < 0.01) {
        // Claude Code's synthetic API-error line: zero usage, no requestId.
        stats.synthetic_lines++;
        push({ ...common(), message: { id: uuid(), model: '<synthetic>', role: 'assistant', stop_reason: 'stop_sequence', stop_sequence: '', type: 'message', usage: { ...zero(), server_tool_use: { web_search_requests: 0 }, service_tier: null }, content: [{ type: 'text', text: 'API Error: 500 {"type":"error","error":{"type":"api_error","message":"Internal server error"}}' }] }, type: 'assistant', uuid: uuid(), timestamp: iso((ts += 200)), isApiErrorMessage: true });
        continue;
      }
      if (r < 0.015) {
        // A usage line without message.id: never deduplicated, so both copies count.
        stats.no_message_id_lines += 2;
        const line = { ...common(), type: 'assistant', message: { type: 'message', role: 'assistant', model, content: [{ type: 'text', text: text(int(3, 20)) }], usage: { input_tokens: int(1, 40), cache_creation_input_tokens: 0, cache_read_input_tokens: int(0, 5000), output_tokens: int(1, 300) } }, uuid: uuid(), timestamp: iso((ts += 300)) };
        push(line);
        push({ ...line, uuid: uuid() });
        continue;
      }
      if (r < 0.02) {
        // Serialized with spaces: ccusage 20 pattern-matches compact JSON and does not see it.
        stats.spaced_lines++;
        const line = { ...common(), type: 'assistant', message: { id: `msg_01${chars(B62, 22)}`, type: 'message', role: 'assistant', model, content: [{ type: 'text', text: 'spaced' }], usage: { input_tokens: 77, cache_creation_input_tokens: 0, cache_read_input_tokens: 0, output_tokens: 7777 } }, requestId: `req_011C${chars(B62, 20)}`, uuid: uuid(), timestamp: iso((ts += 300)) };
        push(JSON.stringify(line, null, 1).replace(/\n\s*/g, ' '), false);
        stats.usage_lines++;
        continue;
      }
      const id = `msg_01${chars(B62, 22)}`;
      const noRequestId = rnd() < 0.06; // newer subagent shape, and some older versions
      if (noRequestId) stats.no_request_id_responses++;
      const req = noRequestId ? undefined : `req_011C${chars(B62, 20)}`;
      const final = { input_tokens: int(1, 60), cache_creation_input_tokens: rnd() < 0.3 ? 0 : int(0, 25000), cache_read_input_tokens: rnd() < 0.1 ? 0 : int(0, 190000), output_tokens: int(1, 2500) };
      const nTools = k === steps - 1 ? (rnd() < 0.3 ? 1 : 0) : int(1, 4);
      const blocks = [...(rnd() < 0.6 ? [{ type: 'thinking', thinking: text(int(10, 150)), signature: chars(B62, 88) }] : []), { type: 'text', text: text(int(3, 120)) }];
      const toolIds = [];
      for (let j = 0; j < nTools; j++) {
        const tid = `toolu_01${chars(B62, 22)}`;
        toolIds.push(tid);
        blocks.push({ type: 'tool_use', id: tid, name: pick(TOOLS), input: { command: text(int(2, 12)), description: text(4) } });
      }
      // One line per content block; earlier ones carry an early output count, the last the final usage.
      blocks.forEach((b, j) => {
        const last = j === blocks.length - 1;
        const early = rnd() < 0.4 ? final.output_tokens : Math.max(1, Math.floor(final.output_tokens * rnd() * 0.5));
        const u = { input_tokens: final.input_tokens, cache_creation_input_tokens: final.cache_creation_input_tokens, cache_read_input_tokens: final.cache_read_input_tokens, output_tokens: last ? final.output_tokens : Math.min(early, final.output_tokens), service_tier: 'standard' };
        if (j > 0) stats.repeat_lines++;
        push({ ...common(), message: { id, type: 'message', role: 'assistant', model, content: [b], stop_reason: null, stop_sequence: null, usage: u }, ...(req ? { requestId: req } : {}), type: 'assistant', uuid: uuid(), timestamp: iso((ts += int(50, 3000))) });
      });
      if (rnd() < 0.03) {
        // A repeat without a timestamp carrying more tokens than the final line: ccusage skips it.
        stats.no_timestamp_lines++;
        stats.repeat_lines++;
        push({ ...common(), message: { id, type: 'message', role: 'assistant', model, content: [{ type: 'text', text: '' }], stop_reason: 'end_turn', stop_sequence: null, usage: { ...final, output_tokens: final.output_tokens + 1000 } }, ...(req ? { requestId: req } : {}), type: 'assistant', uuid: uuid() });
      }
      for (const tid of toolIds) {
        const res = text(int(10, 400));
        push({ ...common(), type: 'user', message: { role: 'user', content: [{ tool_use_id: tid, type: 'tool_result', content: res, is_error: rnd() < 0.05 }] }, uuid: uuid(), timestamp: iso((ts += int(100, 5000))), toolUseResult: { stdout: res.slice(0, 200), stderr: '', interrupted: false, isImage: false } });
      }
    }
  }
  return { lines, parent, ts };
}

function write(file, lines, torn) {
  let body = lines.map((l) => (typeof l === 'string' ? l : JSON.stringify(l))).join('\n');
  if (torn) {
    // A crash mid-write: half of one more line, no newline.
    const half = JSON.stringify(lines[lines.length - 1]);
    body += `\n${half.slice(0, Math.floor(half.length / 2))}`;
    stats.torn_last_lines++;
  } else body += '\n';
  fs.writeFileSync(file, body);
  stats.bytes += Buffer.byteLength(body);
  stats.lines += lines.length + (torn ? 1 : 0);
  stats.files++;
}

const target = mb * 1024 * 1024;
const made = new Set();
let s = 0;
while (stats.bytes < target) {
  const project = projects[s % nProjects];
  const dir = path.join(out, project);
  if (!made.has(project)) {
    fs.mkdirSync(dir, { recursive: true });
    made.add(project);
  }
  const sessionId = uuid();
  const ctx = { session: sessionId, project, cwd: `/${project.slice(1).replace(/-/g, '/')}`, sessionId, version: pick(['1.0.35', '1.0.72', '2.0.14', '2.0.46', '2.1.197']), model: pick(MODELS), sidechain: false, agentId: null };
  const start = t0 + s * 1_800_000 + int(0, 1_000_000);
  const conv = conversation(ctx, start, int(3, 25));
  if (rnd() < 0.5) conv.lines.push({ type: 'summary', summary: text(int(3, 8)), leafUuid: conv.parent });
  write(path.join(dir, `${sessionId}.jsonl`), conv.lines, s % 8 === 2); // every 8th session ends torn
  if (rnd() < 0.25) {
    const sub = path.join(dir, sessionId, 'subagents');
    fs.mkdirSync(sub, { recursive: true });
    for (let a = int(1, 3); a > 0; a--) {
      const agentId = chars(HEX, 8);
      const c = conversation({ ...ctx, sidechain: true, agentId }, start + int(1000, 60000), int(1, 8));
      write(path.join(sub, `agent-${agentId}.jsonl`), c.lines, false);
      stats.subagent_files++;
      if (rnd() < 0.5) {
        fs.writeFileSync(path.join(sub, `agent-${agentId}.meta.json`), `${JSON.stringify({ agentType: pick(['general-purpose', 'Explore', 'Plan']), description: text(4) })}\n`);
        stats.meta_files++;
      }
    }
  }
  s++;
}
stats.projects = made.size;
stats.sessions = s;

const totals = zero();
const models = {};
const sessions = {};
for (const r of [...best.values(), ...undeduped]) {
  const m = (models[r.model] ??= zero());
  const ss = (sessions[r.session] ??= { ...zero(), models: [] });
  for (const k of KINDS) {
    totals[k] += r.u[k];
    m[k] += r.u[k];
    ss[k] += r.u[k];
  }
  if (r.model !== '<synthetic>' && !ss.models.includes(r.model)) ss.models.push(r.model); // as ccusage 20 lists them
}
for (const v of Object.values(sessions)) v.models.sort();
stats.models = Object.keys(models).length;
console.error(`gen-transcripts: ${s} sessions, ${stats.files} files, ${(stats.bytes / 1048576).toFixed(1)} MB under ${out}`);
process.stdout.write(`${JSON.stringify({ generator: 'scripts/gen-transcripts.mjs', args: { mb, seed, projects: nProjects }, stats, expected: { ccusage20: { totals, models, session_count: Object.keys(sessions).length, sessions } } }, null, 1)}\n`);
