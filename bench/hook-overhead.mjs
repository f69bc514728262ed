#!/usr/bin/env node
// What our hooks cost a real `claude -p` run: wall time with no hooks, with hooks
// that run `true`, with hooks that run `node -e 0`, and with claude-metrics
// installed (collector live), interleaved in one run against the same fake API.
// Prints the added milliseconds per fired hook. Usage: node bench/hook-overhead.mjs [--runs 12]
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const runs = Number(process.argv[process.argv.indexOf('--runs') + 1]) || 12;
const CLAUDE = join(root, 'node_modules/.bin/claude');
const EVENTS = ['PreToolUse', 'PostToolUse', 'PostToolUseFailure', 'Stop', 'SubagentStop', 'SessionStart', 'SessionEnd', 'UserPromptSubmit'];
// One tool call: SessionStart, UserPromptSubmit, PreToolUse, PostToolUse, Stop, SessionEnd fire.
const FIRED = 6;

// The fake Messages API in its own process (a tool call, then an answer).
const FAKE = `
const http=require('http');let n=0;
http.createServer((q,s)=>{let b='';q.on('data',c=>b+=c);q.on('end',()=>{
 if(q.method==='HEAD'||q.url==='/'){s.writeHead(200);return s.end()}
 if(q.url.startsWith('/v1/messages/count_tokens')){s.writeHead(200,{'content-type':'application/json'});return s.end('{"input_tokens":1}')}
 const j=JSON.parse(b||'{}');const tool=(j.tools||[]).length>0&&!b.includes('tool_result');n++;
 s.writeHead(200,{'content-type':'text/event-stream','request-id':'req_'+n});
 const e=(t,d)=>s.write('event: '+t+'\\ndata: '+JSON.stringify({type:t,...d})+'\\n\\n');
 e('message_start',{message:{id:'msg_'+n,type:'message',role:'assistant',model:j.model,content:[],stop_reason:null,usage:{input_tokens:100,output_tokens:1,cache_creation_input_tokens:0,cache_read_input_tokens:0}}});
 if(tool){e('content_block_start',{index:0,content_block:{type:'tool_use',id:'toolu_'+n,name:'Bash',input:{}}});e('content_block_delta',{index:0,delta:{type:'input_json_delta',partial_json:JSON.stringify({command:'true'})}})}
 else{e('content_block_start',{index:0,content_block:{type:'text',text:''}});e('content_block_delta',{index:0,delta:{type:'text_delta',text:'ok'}})}
 e('content_block_stop',{index:0});e('message_delta',{delta:{stop_reason:tool?'tool_use':'end_turn'},usage:{output_tokens:5}});e('message_stop',{});s.end()})
}).listen(0,'127.0.0.1',function(){console.log(this.address().port)});`;
const fake = spawn(process.execPath, ['-e', FAKE], { stdio: ['ignore', 'pipe', 'inherit'] });
const port = await new Promise((r) => fake.stdout.once('data', (d) => r(Number(String(d).trim()))));

const base = mkdtempSync(join(tmpdir(), 'cm-hook-bench-'));
const env = (home) => ({
  PATH: process.env.PATH, HOME: home, CLAUDE_CONFIG_DIR: join(home, '.claude'), ANTHROPIC_API_KEY: 'dummy', ANTHROPIC_BASE_URL: `http://127.0.0.1:${port}`,
  CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC: '1', DISABLE_AUTOUPDATER: '1', ...(process.env.NODE_EXTRA_CA_CERTS ? { NODE_EXTRA_CA_CERTS: process.env.NODE_EXTRA_CA_CERTS } : {}),
});
function homeWith(name, command) {
  const home = join(base, name);
  mkdirSync(join(home, '.claude'), { recursive: true });
  mkdirSync(join(home, 'work'), { recursive: true });
  if (command) {
    const hooks = Object.fromEntries(EVENTS.map((e) => [e, [{ ...(e.includes('Tool') ? { matcher: '*' } : {}), hooks: [{ type: 'command', command, timeout: 5 }] }]]));
    writeFileSync(join(home, '.claude', 'settings.json'), JSON.stringify({ hooks }));
  }
  return home;
}

// Our hooks, installed the way a user would (the fast hook, and `--hook emit`), with a live collector.
const oursHome = homeWith('ours', null);
const emitHome = homeWith('ours-emit', null);
const serve = spawn(process.execPath, [join(root, 'bin/claude-metrics'), 'serve', '--port', '0', '--db', join(base, 'c.db')], { env: env(oursHome), stdio: ['ignore', 'ignore', 'pipe'] });
const collector = await new Promise((r) => serve.stderr.on('data', (d) => { const m = /listening on (\S+)/.exec(String(d)); if (m) r(m[1]); }));
spawnSync(process.execPath, [join(root, 'bin/claude-metrics'), 'install', '--settings', join(oursHome, '.claude', 'settings.json')], { env: env(oursHome) });
spawnSync(process.execPath, [join(root, 'bin/claude-metrics'), 'install', '--hook', 'emit', '--settings', join(emitHome, '.claude', 'settings.json')], { env: env(emitHome) });

const cases = [
  { name: 'no hooks', home: homeWith('none', null) },
  { name: 'hooks running `true`', home: homeWith('true', 'true') },
  { name: 'hooks running `node -e 0`', home: homeWith('node', `${process.execPath} -e 0`) },
  { name: 'claude-metrics fast hook (default; live collector)', home: oursHome, extra: { CLAUDE_METRICS_ENDPOINT: `${collector}/metrics/harness` } },
  { name: 'claude-metrics --hook emit (live collector)', home: emitHome, extra: { CLAUDE_METRICS_ENDPOINT: `${collector}/metrics/harness` } },
];
const time = (c) => {
  const t0 = process.hrtime.bigint();
  const r = spawnSync(CLAUDE, ['-p', 'go', '--output-format', 'json', '--allowedTools', 'Bash', '--model', 'claude-sonnet-4-5-20250929'], { env: { ...env(c.home), ...(c.extra ?? {}) }, cwd: join(c.home, 'work'), encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${c.name}: claude exited ${r.status}: ${r.stderr}`);
  return Number(process.hrtime.bigint() - t0) / 1e6;
};
for (const c of cases) time(c); // warm-up
const samples = Object.fromEntries(cases.map((c) => [c.name, []]));
for (let i = 0; i < runs; i++) for (const c of cases) samples[c.name].push(time(c));
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const none = median(samples['no hooks']);
const nodeHook = (median(samples['hooks running `node -e 0`']) - none) / FIRED;
console.log(`claude -p with one tool call (${FIRED} hooks fire), ${runs} interleaved runs each, Claude Code ${spawnSync(CLAUDE, ['--version'], { encoding: 'utf8' }).stdout.trim()}`);
console.table(cases.map((c) => {
  const m = median(samples[c.name]);
  const perHook = (m - none) / FIRED;
  return { case: c.name, 'median ms': m.toFixed(0), 'added ms per fired hook': c.name === 'no hooks' ? '—' : perHook.toFixed(1), '× node -e 0 hook': c.name === 'no hooks' ? '—' : (perHook / nodeHook).toFixed(2) };
}));
console.log('target: claude-metrics ≤ 1.3× the cost of a `node -e 0` hook');
// The fast hook's drainer delivers after claude exits: wait until the count settles.
let received = -1;
for (let last = -2; received !== last; ) {
  last = received;
  await new Promise((r) => setTimeout(r, 2500));
  received = (await fetch(`${collector}/healthz`).then((r) => r.json())).events;
}
// Per run: 6 hook events and 2 usage events (one per assistant message); two cases, warm-up included.
console.log(`collector received ${received} events from the runs with our hooks (expected ${(runs + 1) * 2 * (FIRED + 2)})`);
serve.kill('SIGTERM');
fake.kill();
setTimeout(() => rmSync(base, { recursive: true, force: true, maxRetries: 10, retryDelay: 200 }), 1500);
