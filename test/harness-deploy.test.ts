/**
 * deploy/claude-harness/ without a Docker daemon: compose.yaml and the Grafana
 * provisioning parsed (python3 yaml) and checked against the repository (every
 * mounted file exists, the names the services use resolve), the Dockerfile's
 * sources exist, prometheus.yml passes `promtool check config` and, with Debian's
 * Prometheus run against a real `serve` with a token, scrapes it and loads the
 * alert rules. What is not run here (docker build, docker compose up, Grafana
 * itself) is listed in docs/containers.md.
 */
import { spawn, spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { uuidv7 } from '../src/ids';
import { deadPort, getJson, postJson, ROOT, startServe, tempHome, waitFor } from './helpers/cli';

const DIR = join(ROOT, 'deploy', 'claude-harness');

function yaml(file: string): any {
  const r = spawnSync('/usr/bin/python3', ['-c', 'import json, sys, yaml; print(json.dumps(yaml.safe_load(open(sys.argv[1]))))', file], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${file}: ${r.stderr}`);
  return JSON.parse(r.stdout);
}

describe('compose.yaml', () => {
  const compose = yaml(join(DIR, 'compose.yaml'));

  it('has the collector as llm-router on 8013, the harness, Prometheus and Grafana', () => {
    expect(Object.keys(compose.services).sort()).toEqual(['collector', 'grafana', 'harness', 'prometheus']);
    expect(compose.services.collector.networks.default.aliases).toContain('llm-router');
    expect(compose.services.collector.ports).toContain('127.0.0.1:8013:8013');
    const h = compose.services.harness;
    expect(h.environment.METRICS_ENDPOINT).toBe('http://llm-router:8013/metrics/harness');
    expect(h.init).toBe(true);
    expect(h.build.target).toBe('harness');
    expect(compose.services.collector.build.target).toBe('collector');
    // The spool outlives the container.
    expect(h.volumes).toContain('harness-state:/home/claude/.local/state/claude-metrics');
  });

  it('mounts only files that exist, and builds from a Dockerfile whose sources exist', () => {
    for (const [name, svc] of Object.entries<any>(compose.services)) {
      for (const v of svc.volumes ?? []) {
        const src = String(v).split(':')[0]!;
        if (!src.startsWith('.')) continue; // a named volume
        expect(existsSync(resolve(DIR, src)), `${name}: ${src}`).toBe(true);
      }
      if (svc.build) expect(existsSync(resolve(DIR, svc.build.context, svc.build.dockerfile)), name).toBe(true);
    }
    const dockerfile = readFileSync(join(DIR, 'Dockerfile'), 'utf8');
    const targets = [...dockerfile.matchAll(/^FROM \S+ AS (\S+)$/gm)].map((m) => m[1]);
    expect(targets).toEqual(['build', 'claude', 'harness', 'collector']);
    for (const m of dockerfile.matchAll(/^COPY (?!--from)(\S+) /gm)) if (m[1] !== '.') expect(existsSync(join(ROOT, m[1]!)), m[1]).toBe(true);
    expect(dockerfile).toMatch(/npm run package/);
    expect(dockerfile).toContain('ENTRYPOINT ["/usr/local/bin/claude-harness-entrypoint"]');
    // The package script writes the binary the harness stage copies.
    expect(readFileSync(join(ROOT, 'scripts', 'package.mjs'), 'utf8')).toContain("join(out, 'claude-metrics')");
  });

  it('provisions Grafana with a default Prometheus datasource at the prometheus service and the shipped dashboard', () => {
    const ds = yaml(join(DIR, 'grafana', 'provisioning', 'datasources', 'prometheus.yml'));
    expect(ds.datasources).toEqual([expect.objectContaining({ type: 'prometheus', url: 'http://prometheus:9090', isDefault: true })]);
    const providers = yaml(join(DIR, 'grafana', 'provisioning', 'dashboards', 'claude-harness.yml')).providers;
    const mount = compose.services.grafana.volumes.find((v: string) => v.startsWith('../grafana:'));
    expect(providers[0].options.path).toBe(mount.split(':')[1]);
    const dash = JSON.parse(readFileSync(join(ROOT, 'deploy', 'grafana', 'claude-harness.json'), 'utf8'));
    // Provisioning does not fill __inputs: the panels' ${DS_PROMETHEUS} must be a datasource variable of the dashboard.
    expect(dash.templating.list.find((v: { name: string }) => v.name === 'DS_PROMETHEUS')).toMatchObject({ type: 'datasource', query: 'prometheus' });
    expect(compose.services.grafana.environment.GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH).toBe(`${mount.split(':')[1]}/claude-harness.json`);
  });

  it('entrypoint.sh is valid POSIX sh (dash) and bash', () => {
    for (const sh of ['/usr/bin/dash', '/bin/bash']) expect(spawnSync(sh, ['-n', join(DIR, 'entrypoint.sh')]).status, sh).toBe(0);
  });
});

describe('prometheus.yml', () => {
  const SHIPPED_RULES: string[] = yaml(join(ROOT, 'deploy', 'prometheus', 'alerts.yml')).groups.flatMap((g: { rules: Array<{ alert: string }> }) => g.rules.map((r) => r.alert));
  /** The container layout in a temp dir: the config with alerts.yml beside it; the token file path moved into the temp dir. */
  function layout(token: string, target?: string): { dir: string; config: string } {
    const dir = mkdtempSync(join(tmpdir(), 'cm-prom-'));
    let text = readFileSync(join(DIR, 'prometheus.yml'), 'utf8');
    expect(text).toContain('credentials_file: /prometheus/collector-token');
    text = text.replace('/prometheus/collector-token', join(dir, 'collector-token'));
    if (target) text = text.replace('"llm-router:8013"', JSON.stringify(target));
    writeFileSync(join(dir, 'prometheus.yml'), text);
    writeFileSync(join(dir, 'collector-token'), token);
    copyFileSync(join(ROOT, 'deploy', 'prometheus', 'alerts.yml'), join(dir, 'alerts.yml'));
    return { dir, config: join(dir, 'prometheus.yml') };
  }

  it('passes promtool check config, with the shipped alert rules', () => {
    const { dir, config } = layout('');
    try {
      const r = spawnSync('promtool', ['check', 'config', config], { cwd: dirname(config), encoding: 'utf8' });
      expect(r.status, r.stdout + r.stderr).toBe(0);
      expect(r.stdout).toMatch(/SUCCESS: 1 rule files found/);
      expect(r.stdout).toContain(`SUCCESS: ${SHIPPED_RULES.length} rules found`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("Debian's Prometheus with it scrapes a collector that needs a token, and loads the rules", async () => {
    const home = tempHome('cm-prom-serve-');
    const serve = await startServe(home.env, ['--db', join(home.home, 'c.db'), '--token', 'scrape-token']);
    await postJson(serve.endpoint, { event_id: uuidv7(), event: 'ralph_task_started', source: 'ralph', run_id: 'r', task_id: 'T', label: 'l', project: 'p', timestamp: new Date().toISOString() }, { authorization: 'Bearer scrape-token' });
    const { dir, config } = layout('scrape-token', new URL(serve.url).host);
    const port = await deadPort();
    const text = readFileSync(config, 'utf8').replace('scrape_interval: 15s', 'scrape_interval: 1s');
    writeFileSync(config, text);
    const prom = spawn('prometheus', [`--config.file=${config}`, `--storage.tsdb.path=${join(dir, 'data')}`, `--web.listen-address=127.0.0.1:${port}`], { stdio: ['ignore', 'ignore', 'pipe'] });
    let log = '';
    prom.stderr!.on('data', (d: Buffer) => (log += d.toString()));
    const exited = new Promise((r) => prom.on('exit', r));
    try {
      const api = `http://127.0.0.1:${port}/api/v1`;
      const up = await waitFor(
        async () => {
          try {
            const r = await getJson(`${api}/query?query=${encodeURIComponent('claude_harness_events_total{job="claude-harness"}')}`);
            return r.body?.data?.result?.length > 0 ? r.body.data.result : undefined;
          } catch {
            return undefined;
          }
        },
        { timeoutMs: 40_000, intervalMs: 500 },
      ).catch((e) => {
        throw new Error(`${(e as Error).message}\n${log.slice(-2000)}`);
      });
      // Bounded families: by source and event here, the project and label in their own families.
      expect(up[0].metric).toMatchObject({ source: 'ralph', event: 'ralph_task_started' });
      expect(up[0].metric).not.toHaveProperty('project');
      const rules = (await getJson(`${api}/rules`)).body.data.groups.flatMap((g: { rules: Array<{ name: string }> }) => g.rules.map((r) => r.name));
      expect(rules.sort()).toEqual([...SHIPPED_RULES].sort());
      expect(rules).toContain('RalphTaskFailureRateHigh');
    } finally {
      prom.kill('SIGTERM');
      await exited;
      await serve.stop();
      rmSync(dir, { recursive: true, force: true });
      home.cleanup();
    }
  });
});
