/**
 * Background work started by a hook: detached, stdio ignored, unref'd, so the
 * hook returns at once and Claude Code never waits for it (async hooks are no
 * alternative: `claude -p` kills them at exit).
 */
import { join } from 'node:path';

/** How to run this same program again: the built cli.cjs beside emit.cjs, or the single binary. */
export function selfCommand(): { cmd: string; args: string[] } {
  if (process.env.CLAUDE_METRICS_SELF) return { cmd: process.env.CLAUDE_METRICS_SELF, args: [] };
  try {
    const sea = require('node:sea') as { isSea?: () => boolean };
    if (sea.isSea?.()) return { cmd: process.execPath, args: [] };
  } catch {
    /* not a single executable */
  }
  return { cmd: process.execPath, args: [join(__dirname, 'cli.cjs')] };
}

export function spawnDetached(args: string[], env: NodeJS.ProcessEnv): number | undefined {
  const self = selfCommand();
  // Loaded here: child_process costs ~4 ms and most hooks never start anything.
  const { spawn } = require('node:child_process') as typeof import('node:child_process');
  const child = spawn(self.cmd, [...self.args, ...args], { detached: true, stdio: 'ignore', env, windowsHide: true });
  child.on('error', () => {
    /* reported by the caller's log if it matters; never thrown */
  });
  child.unref();
  return child.pid;
}
