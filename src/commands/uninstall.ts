/**
 * `claude-metrics uninstall`: remove our hook entries (any version) and the
 * containers that leaves empty, nothing else. When the file is exactly as our
 * install left it, the original bytes come back from the backup.
 */
import { unifiedDiff } from '../install/diff';
import { planUninstall } from '../install/settings-edit';
import { planOtelUninstall } from '../install/otel-env';

/** Our hooks and our OTel env keys out of a settings text. */
const strip = (text: string, file: string) => planOtelUninstall(planUninstall(text, file).text, file).text;
import { backupSettings, InstallRecords, readSettings, removeSettingsFile, sha256, writeSettings } from '../install/settings-file';
import { withManagedHint } from '../install/managed';
import { resolveTarget } from '../install/target';
import { installRecordsFile } from './install';

/** The bytes to restore, when the file is untouched since our install and its original is still at hand. */
function originalFromRecord(records: InstallRecords, path: string, current: string): { text: string | null } | undefined {
  const rec = records.get(path);
  if (!rec || rec.afterSha256 !== sha256(current)) return undefined;
  if (rec.backup === null) return { text: null };
  const text = readSettings(rec.backup);
  return text === null ? undefined : { text };
}

export default async function uninstall(opts: Record<string, unknown>): Promise<number> {
  const target = resolveTarget(opts);
  const before = readSettings(target.path);
  if (before === null) {
    process.stdout.write(`claude-metrics: ${target.display} does not exist; nothing to remove\n`);
    return 0;
  }
  const records = new InstallRecords(installRecordsFile(opts));
  const original = originalFromRecord(records, target.path, before);
  // An original that itself held (older) hooks of ours still loses them.
  const after = original === undefined ? strip(before, target.display) : original.text === null ? null : strip(original.text, target.display);
  if (opts.dryRun === true) {
    process.stdout.write(unifiedDiff(before, after ?? '', { a: target.display, b: after === null ? '/dev/null' : target.display }));
    return 0;
  }
  if (after === before) {
    process.stdout.write(`claude-metrics: no claude-metrics hooks or OTel settings in ${target.display}; nothing changed\n`);
    return 0;
  }
  const backup = withManagedHint(target.scope === 'managed', () => {
    const b = backupSettings(target.path);
    if (after === null) removeSettingsFile(target.path);
    else writeSettings(target.path, after);
    return b;
  });
  records.delete(target.path);
  process.stdout.write(`claude-metrics: removed our hooks and settings from ${target.display}${after === null ? ' (the file did not exist before install: removed it)' : ''}\n  backup: ${backup}\n`);
  return 0;
}
