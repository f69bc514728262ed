/**
 * `claude-metrics install`: add our hooks to a Claude Code settings file.
 * Surgical (comments, formatting and other hooks survive), backed up first,
 * idempotent; `--dry-run` prints the diff and writes nothing.
 */
import { UsageError } from '../errors';
import { resolveConfig } from '../config';
import { statePaths } from '../paths';
import { unifiedDiff } from '../install/diff';
import { hookCommandFor } from '../install/hook-command';
import { locateSelf } from '../install/self';
import { EMBEDDED_HOOK_SCRIPT, managedHookScriptPath, writeEmbeddedHookScript } from '../install/hook-script';
import { managedWarnings, withManagedHint } from '../install/managed';
import { DEFAULT_EVENTS, DEFAULT_TIMEOUT_S, KNOWN_EVENTS, planInstall } from '../install/settings-edit';
import { findOurHooks } from '../install/settings-edit';
import { backupSettings, InstallRecords, readSettings, realTarget, settingsPathFor, sha256, writeSettings, type Scope } from '../install/settings-file';
import { resolveTarget } from '../install/target';
import { join } from 'node:path';
import { CliError } from '../errors';
import { collectorBase, otelVars, planOtelInstall } from '../install/otel-env';

export function parseEvents(list: unknown): string[] {
  if (list === undefined) return [...DEFAULT_EVENTS];
  const events = String(list)
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  if (events.length === 0) throw new UsageError('--events expects a comma-separated list of hook events');
  const unknown = events.filter((e) => !KNOWN_EVENTS.has(e));
  if (unknown.length > 0) throw new UsageError(`--events: unknown hook event ${unknown.join(', ')} (known: ${[...KNOWN_EVENTS].join(', ')})`);
  return [...new Set(events)];
}

export function installRecordsFile(opts: Record<string, unknown>): string {
  const { config } = resolveConfig({ configFile: opts.config as string | undefined });
  return join(statePaths(config.stateDir).root, 'installs.json');
}

/** Other scopes that already hold our hooks: Claude Code runs them all, so every event would count twice. */
function otherScopesWithOurHooks(targetPath: string): string[] {
  const out: string[] = [];
  for (const scope of ['user', 'project', 'local', 'managed'] as Scope[]) {
    const path = settingsPathFor(scope, process.env, process.cwd());
    if (realTarget(path) === targetPath) continue;
    let text: string | null = null;
    try {
      text = readSettings(path);
    } catch {
      continue;
    }
    if (text !== null && findOurHooks(text, path).commands.length > 0) out.push(`${scope} (${path})`);
  }
  return out;
}

export default async function install(opts: Record<string, unknown>): Promise<number> {
  const events = parseEvents(opts.events);
  const timeoutS = (opts.timeout as number | undefined) ?? DEFAULT_TIMEOUT_S;
  if (timeoutS < 1 || timeoutS > 600) throw new UsageError(`--timeout must be between 1 and 600 seconds, got ${timeoutS}`);
  const target = resolveTarget(opts);
  const mode = (opts.hook as string | undefined) ?? 'fast';
  if (mode !== 'fast' && mode !== 'emit') throw new UsageError(`--hook must be fast or emit, got ${JSON.stringify(mode)}`);
  const managed = target.scope === 'managed';
  const located = locateSelf();
  // Managed hooks run as every user: the binary's hook script goes where they can all read it.
  const self = managed && located.kind === 'binary' && located.hookScript ? { ...located, hookScript: managedHookScriptPath(located.path) } : located;
  const command = hookCommandFor(self, mode);
  const before = withManagedHint(managed, () => readSettings(target.path));
  const otelOnly = opts.otelOnly === true;
  const hooksPlan = otelOnly
    ? { text: before ?? '', changed: false, added: [] as string[], updated: [] as string[], unchanged: [] as string[] }
    : planInstall(before ?? '', { command, events, timeoutS, async: opts.async === true }, target.display);
  const plan = { ...hooksPlan };
  let otelNote = '';
  if (opts.otel === true || otelOnly) {
    // The collector the hooks send to also takes Claude Code's own OTLP export (serve: /v1/logs, /v1/metrics).
    const { config } = resolveConfig({ configFile: opts.config as string | undefined });
    const protocol = opts.otelProtocol === 'json' ? 'http/json' : 'http/protobuf';
    const vars = otelVars({ endpoint: collectorBase(config.endpoint), protocol, token: config.token });
    const o = planOtelInstall(plan.text, vars, target.display);
    if (o.conflicts.length > 0) {
      throw new CliError(
        `${target.display} already exports OpenTelemetry elsewhere (${o.conflicts.map((c) => `${c.key}=${c.value}`).join(', ')}); nothing changed. ` +
          'Send it to both with an OpenTelemetry Collector that forwards to this collector too, or remove those keys and run install --otel again.',
        'E_OTEL_CONFLICT',
        1,
      );
    }
    if (o.changed) {
      plan.text = o.text;
      plan.changed = true;
      if (o.added.length + o.updated.length > 0) plan.added.push(`OTel export to ${vars.OTEL_EXPORTER_OTLP_ENDPOINT} (env ${[...o.added, ...o.updated].join(', ')})`);
    } else plan.unchanged.push('OTel export');
    if (vars.OTEL_EXPORTER_OTLP_HEADERS) otelNote = '  note: the collector token is in that file\'s env (OTEL_EXPORTER_OTLP_HEADERS); keep it private\n';
  }
  if (opts.async === true) {
    process.stderr.write('claude-metrics: warning: async hooks are killed when `claude -p` exits, so headless runs can lose their last events; the default (sync, 300 ms deadline) loses none\n');
  }
  const changed = plan.changed || before === null;
  const doubled = otherScopesWithOurHooks(target.path);
  if (doubled.length > 0) {
    process.stderr.write(`claude-metrics: warning: our hooks are also in ${doubled.join(', ')}: Claude Code runs every scope's hooks, so each event would be counted twice; remove one with claude-metrics uninstall --scope …\n`);
  }
  if (managed) for (const w of managedWarnings(target.path, command, self.kind === 'binary' && mode === 'fast' ? self.hookScript : undefined)) process.stderr.write(`claude-metrics: warning: ${w}\n`);
  if (opts.dryRun === true) {
    process.stdout.write(unifiedDiff(before ?? '', plan.text, { a: before === null ? '/dev/null' : target.display, b: target.display }));
    if (!changed) process.stderr.write(`claude-metrics: ${target.display} already has our hooks; nothing to change\n`);
    return 0;
  }
  // The single binary carries the fast hook's script: put it (back) where the command points.
  if (self.kind === 'binary' && mode === 'fast' && self.hookScript && EMBEDDED_HOOK_SCRIPT) withManagedHint(managed, () => writeEmbeddedHookScript(self.hookScript!, EMBEDDED_HOOK_SCRIPT!, managed ? 0o755 : 0o700));
  if (!changed) {
    process.stdout.write(`claude-metrics: already installed in ${target.display} (${plan.unchanged.join(', ')}); nothing changed\n`);
    return 0;
  }
  const records = new InstallRecords(installRecordsFile(opts));
  const previous = records.get(target.path);
  const backup = withManagedHint(managed, () => {
    const b = before === null ? null : backupSettings(target.path);
    writeSettings(target.path, plan.text, managed ? { fileMode: 0o644, dirMode: 0o755 } : undefined);
    return b;
  });
  // Keep pointing at the oldest untouched original while the file is only ours to change.
  const keepOld = previous !== undefined && before !== null && sha256(before) === previous.afterSha256;
  records.set(target.path, { backup: keepOld ? previous.backup : backup, afterSha256: sha256(plan.text), at: new Date().toISOString() });
  const parts = [];
  if (plan.added.length) parts.push(`added ${plan.added.join(', ')}`);
  if (plan.updated.length) parts.push(`updated ${plan.updated.join(', ')}`);
  process.stdout.write(
    `claude-metrics: ${before === null ? 'created' : 'updated'} ${target.display}: ${parts.join('; ')}\n` +
      (otelOnly ? '' : `  hook command: ${command}\n`) +
      otelNote +
      (backup ? `  backup: ${backup}\n` : '') +
      `  undo: claude-metrics uninstall${opts.settings ? ` --settings ${target.display}` : opts.scope && opts.scope !== 'user' ? ` --scope ${String(opts.scope)}` : ''}\n`,
  );
  return 0;
}
