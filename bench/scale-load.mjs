// The load client of bench/scale.mjs, in its own process so the parent's timers
// stay punctual: generates the mix (scale-gen.mjs) batch by batch, POSTs batches
// of 500 to /metrics/harness over N keep-alive connections and prints one line
// per acknowledged batch: {"b":index,"t0":epoch ms sent,"ms":latency,"n":events}.
// A 503 (the store busy or unavailable) is retried after a short pause and the
// wait counts in that batch's latency: that is the stall an emitter sees.
// Stops after `total` events, or when its stdin closes (the parent says stop).
// Usage: node bench/scale-load.mjs '<json spec>'
//   spec: {url, seed, total, beginMs, endMs, connections, batch, ratePerS?}
//   ratePerS paces the batches (the retention pass's steady ingest); without it, full speed.
import http from 'node:http';
import { generate } from './scale-gen.mjs';

const spec = JSON.parse(process.argv[2]);
const BATCH = spec.batch ?? 500;
const CONNS = spec.connections ?? 4;
const MAX_RETRIES = 600; // 503s for one batch (~60 s at 100 ms): past that the run fails
const REQUEST_TIMEOUT_MS = 120_000; // a collector that stops answering fails the run instead of hanging it
const agent = new http.Agent({ keepAlive: true, maxSockets: CONNS });
const events = generate({ seed: spec.seed, total: spec.total, beginMs: spec.beginMs, endMs: spec.endMs });
let stop = false;
process.stdin.on('data', () => undefined);
process.stdin.on('end', () => (stop = true));
process.stdin.on('error', () => (stop = true));

let next = 0;
function nextBody() {
  const batch = [];
  for (let i = 0; i < BATCH; i++) {
    const r = events.next();
    if (r.done) break;
    batch.push(r.value);
  }
  return batch.length === 0 ? null : { n: batch.length, body: JSON.stringify({ events: batch }) };
}

const post = (body) =>
  new Promise((resolve, reject) => {
    const q = http.request(spec.url, { method: 'POST', agent, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d) => (text += d));
      res.on('end', () => resolve({ status: res.statusCode, text }));
    });
    q.setTimeout(REQUEST_TIMEOUT_MS, () => q.destroy(new Error(`no answer in ${REQUEST_TIMEOUT_MS / 1000} s`)));
    q.on('error', reject);
    q.end(body);
  });

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const started = Date.now();
const gap = spec.ratePerS ? (BATCH / spec.ratePerS) * 1000 * CONNS : 0; // per connection

async function worker(k) {
  let due = started + (gap / CONNS) * k;
  while (!stop) {
    if (gap) {
      const wait = due - Date.now();
      if (wait > 0) await sleep(wait);
      due += gap;
      if (stop) return;
    }
    const b = nextBody();
    if (!b) return;
    const index = next++;
    const t0 = performance.timeOrigin + performance.now();
    for (let attempt = 0; ; attempt++) {
      const r = await post(b.body);
      if (r.status === 200) {
        const out = JSON.parse(r.text);
        if (out.accepted + out.duplicates !== b.n) throw new Error(`batch ${index}: ${out.accepted} accepted + ${out.duplicates} duplicates of ${b.n}; rejected ${JSON.stringify(out.rejected).slice(0, 300)}`);
        break;
      }
      if (r.status !== 503 || attempt >= MAX_RETRIES) throw new Error(`batch ${index}: HTTP ${r.status} ${r.text.slice(0, 300)}`);
      await sleep(100);
    }
    const ms = performance.timeOrigin + performance.now() - t0;
    process.stdout.write(`{"b":${index},"t0":${t0.toFixed(1)},"ms":${ms.toFixed(2)},"n":${b.n}}\n`);
  }
}

Promise.all(Array.from({ length: CONNS }, (_, k) => worker(k)))
  .then(() => {
    agent.destroy();
    process.exit(0);
  })
  .catch((err) => {
    process.stderr.write(`scale-load: ${err.message}\n`);
    process.exit(1);
  });
