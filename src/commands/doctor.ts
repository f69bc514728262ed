/**
 * `claude-metrics doctor [--json]`: the effective configuration and where each
 * value came from, the collector (reachability, latency, token), the breaker,
 * the spool, our hooks in each settings scope and whether their command runs,
 * Claude Code's version and settings that defeat metrics. Exit 0 when healthy,
 * 1 with one line per problem otherwise.
 */
import { resolveConfig } from '../config';
import { ConfigError } from '../errors';
import { VERSION } from '../version';
import { assess, gatherFacts, renderText } from '../install/doctor';
import { hookCommandFor } from '../install/hook-command';
import { locateSelf } from '../install/self';

export default async function doctor(opts: Record<string, unknown>): Promise<number> {
  const resolved = resolveConfig({ configFile: opts.config as string | undefined, flags: { endpoint: opts.endpoint, token: opts.token } });
  if (resolved.errors.length > 0) throw new ConfigError(resolved.errors.join('; '));
  const facts = await gatherFacts({ resolved, env: process.env, cwd: process.cwd(), version: VERSION, expectedCommands: [hookCommandFor(locateSelf(), 'fast'), hookCommandFor(locateSelf(), 'emit')], managedSettings: process.env.CLAUDE_METRICS_MANAGED_SETTINGS });
  const verdict = assess(facts);
  if (opts.json === true) process.stdout.write(`${JSON.stringify({ ...verdict, ...facts }, null, 2)}\n`);
  else process.stdout.write(renderText(facts, verdict));
  return verdict.healthy ? 0 : 1;
}
