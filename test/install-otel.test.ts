/**
 * install --otel / --otel-only and uninstall through the built CLI: the OTel
 * variables land in the settings file's `env`, other keys survive byte for
 * byte, twice is once, uninstall removes exactly what was added (also after the
 * user edited the file), an existing OTel export elsewhere is refused, and
 * doctor sees the export reach a real collector.
 */
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { parse } from 'jsonc-parser';
import { collectorBase, OTEL_MARKER, planOtelInstall, planOtelUninstall, otelVars } from '../src/install/otel-env';
import { runCli, startServe, tempHome, type TempHome } from './helpers/cli';

const FIX = join(__dirname, 'fixtures', 'settings');
let t: TempHome;
let settings: string;
beforeEach(() => {
  t = tempHome('cm-otel-');
  settings = join(t.home, '.claude', 'settings.json');
  mkdirSync(join(t.home, '.claude'), { recursive: true });
});
afterEach(() => t.cleanup());

const envOf = (path: string) => (parse(readFileSync(path, 'utf8')) as { env?: Record<string, string> }).env ?? {};

describe.each(['empty', 'braces', 'comments', 'tabs', 'crlf-four-spaces', 'no-trailing-newline', 'unrelated-hooks'])('fixture %s', (name) => {
  it('install --otel-only adds the variables, twice is once, uninstall gives the bytes back (also after an unrelated edit)', async () => {
    copyFileSync(join(FIX, `${name}.json`), settings);
    const original = readFileSync(settings, 'utf8');
    const env = { ...t.env, CLAUDE_METRICS_ENDPOINT: 'http://127.0.0.1:9/metrics/harness' };
    const r = await runCli(['install', '--otel-only'], { env, cwd: t.home });
    expect(r.code, r.stderr).toBe(0);
    expect(envOf(settings)).toMatchObject({ CLAUDE_CODE_ENABLE_TELEMETRY: '1', OTEL_LOGS_EXPORTER: 'otlp', OTEL_METRICS_EXPORTER: 'otlp', OTEL_EXPORTER_OTLP_PROTOCOL: 'http/protobuf', OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:9' });
    expect(readFileSync(settings, 'utf8').includes('"hooks"')).toBe(original.includes('"hooks"')); // no hooks added
    const once = readFileSync(settings, 'utf8');
    expect((await runCli(['install', '--otel-only'], { env, cwd: t.home })).stdout).toMatch(/nothing changed/);
    expect(readFileSync(settings, 'utf8')).toBe(once);
    expect((await runCli(['uninstall'], { env, cwd: t.home })).code).toBe(0);
    expect(readFileSync(settings, 'utf8')).toBe(original);

    // The pure plan, with the user's own edit in between: only our keys go.
    const withOurs = planOtelInstall(original, otelVars({ endpoint: 'http://c:1', protocol: 'http/json' }), name).text;
    const edited = withOurs.replace('"CLAUDE_CODE_ENABLE_TELEMETRY"', '"MY_VAR": "x",\n    "CLAUDE_CODE_ENABLE_TELEMETRY"');
    const back = planOtelUninstall(edited, name).text;
    expect(parse(back).env).toEqual({ ...((parse(original) ?? {}) as { env?: object }).env, MY_VAR: 'x' });
    expect(back).not.toContain('OTEL_');
    expect(back).not.toContain(OTEL_MARKER);
  });
});

describe('install --otel', () => {
  it('keeps other env keys, carries the token as a header, and refuses to overwrite an OTel export elsewhere', async () => {
    writeFileSync(settings, '{\n  // mine\n  "env": { "FOO": "bar", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://otel.example:4318" }\n}\n');
    const before = readFileSync(settings, 'utf8');
    const refused = await runCli(['install', '--otel'], { env: t.env, cwd: t.home });
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/already exports OpenTelemetry elsewhere \(OTEL_EXPORTER_OTLP_ENDPOINT=http:\/\/otel\.example:4318\); nothing changed/);
    expect(refused.stderr).not.toMatch(/\n\s+at /);
    expect(readFileSync(settings, 'utf8')).toBe(before);

    writeFileSync(settings, '{\n  // mine\n  "env": { "FOO": "bar" }\n}\n');
    const r = await runCli(['install', '--otel', '--otel-protocol', 'json'], { env: { ...t.env, CLAUDE_METRICS_TOKEN: 'tok-9' }, cwd: t.home });
    expect(r.code, r.stderr).toBe(0);
    expect(envOf(settings)).toMatchObject({ FOO: 'bar', OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json', OTEL_EXPORTER_OTLP_HEADERS: 'Authorization=Bearer tok-9', OTEL_EXPORTER_OTLP_ENDPOINT: collectorBase(t.env.CLAUDE_METRICS_ENDPOINT!) });
    expect(readFileSync(settings, 'utf8')).toContain('// mine');
    // The token went away: a second install drops the header it had added.
    await runCli(['install', '--otel', '--otel-protocol', 'json'], { env: t.env, cwd: t.home });
    expect(envOf(settings).OTEL_EXPORTER_OTLP_HEADERS).toBeUndefined();
    await runCli(['uninstall'], { env: t.env, cwd: t.home });
    expect(envOf(settings)).toEqual({ FOO: 'bar' });
  });

  it('doctor: OTel on, pointing at a collector that takes the export; off elsewhere is a note', async () => {
    const serve = await startServe(t.env, ['--db', join(t.home, 'c.db'), '--token', 'tk']);
    try {
      const env = { ...t.env, CLAUDE_METRICS_ENDPOINT: serve.endpoint, CLAUDE_METRICS_TOKEN: 'tk' };
      expect((await runCli(['install', '--otel'], { env, cwd: t.home })).code).toBe(0);
      const d = await runCli(['doctor'], { env, cwd: t.home });
      expect(d.stdout).toMatch(/opentelemetry[\s\S]*user\s+\S+settings\.json: on \(install --otel\), to http:\/\/127\.0\.0\.1:\d+ \(http\/protobuf\), \/v1\/logs HTTP 200/);
      expect((await getSessions(serve.url)).total).toBe(0); // the probe stored nothing
      // A wrong token in the settings is a problem doctor names.
      writeFileSync(settings, readFileSync(settings, 'utf8').replace('Bearer tk', 'Bearer nope'));
      const bad = await runCli(['doctor'], { env, cwd: t.home });
      expect(bad.code).toBe(1);
      expect(bad.stdout).toMatch(/refuses the OTel export's token \(HTTP 401\)/);
    } finally {
      await serve.stop();
    }
  });
});

async function getSessions(url: string) {
  const r = await fetch(`${url}/api/sessions`, { headers: { authorization: 'Bearer tk' } });
  return (await r.json()) as { total: number };
}
