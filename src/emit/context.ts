/**
 * Where an event was produced: host, user, git branch and commit, project and
 * source. Git is read from `.git` files directly — spawning `git` costs tens of
 * milliseconds on every hook.
 */
import { readFileSync, statSync } from 'node:fs';
import { basename, dirname, isAbsolute, join, resolve } from 'node:path';
import { isSource, type Source } from '../ids';

type Env = Record<string, string | undefined>;

export interface GitInfo {
  /** The work tree's top-level directory. */
  topLevel: string;
  branch: string | null;
  commit: string | null;
}

function readText(path: string): string | null {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return null;
  }
}

function isDir(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}

/** Finds the repository of `cwd` by walking up; handles worktrees and submodules (`.git` file with `gitdir:`). */
export function readGitInfo(cwd: string): GitInfo | null {
  let dir = resolve(cwd);
  for (let depth = 0; depth < 64; depth++) {
    const dotGit = join(dir, '.git');
    let gitDir: string | null = null;
    if (isDir(dotGit)) gitDir = dotGit;
    else {
      const text = readText(dotGit);
      const m = text ? /^gitdir:\s*(.+)\s*$/m.exec(text) : null;
      if (m) gitDir = isAbsolute(m[1]!) ? m[1]! : resolve(dir, m[1]!);
    }
    if (gitDir) return { topLevel: dir, ...readHead(gitDir) };
    const parent = dirname(dir);
    if (parent === dir) return null;
    dir = parent;
  }
  return null;
}

function readHead(gitDir: string): { branch: string | null; commit: string | null } {
  const head = readText(join(gitDir, 'HEAD'))?.trim();
  if (!head) return { branch: null, commit: null };
  if (/^[0-9a-f]{40,64}$/.test(head)) return { branch: null, commit: head };
  const m = /^ref:\s*(refs\/\S+)$/.exec(head);
  if (!m) return { branch: null, commit: null };
  const ref = m[1]!;
  const branch = ref.startsWith('refs/heads/') ? ref.slice('refs/heads/'.length) : ref;
  // A linked worktree keeps shared refs in its commondir.
  const common = readText(join(gitDir, 'commondir'))?.trim();
  const dirs = common ? [gitDir, resolve(gitDir, common)] : [gitDir];
  for (const d of dirs) {
    const loose = readText(join(d, ref))?.trim();
    if (loose && /^[0-9a-f]{40,64}$/.test(loose)) return { branch, commit: loose };
  }
  for (const d of dirs) {
    const packed = readText(join(d, 'packed-refs'));
    if (!packed) continue;
    for (const line of packed.split('\n')) {
      const sp = line.indexOf(' ');
      if (sp > 0 && line.slice(sp + 1).trim() === ref) return { branch, commit: line.slice(0, sp) };
    }
  }
  return { branch, commit: null }; // unborn branch
}

/** project: flag > CLAUDE_METRICS_PROJECT (via config) > git top-level name > cwd name. */
export function detectProject(explicit: string | undefined, git: GitInfo | null, cwd: string): string {
  if (explicit) return explicit;
  if (git) return basename(git.topLevel) || git.topLevel;
  return basename(cwd) || cwd;
}

/**
 * source: flag / CLAUDE_METRICS_SOURCE (via config) > the `run` wrapper's env
 * (it sets CLAUDE_METRICS_SOURCE; a bare CLAUDE_METRICS_RUN_ID means a loop) >
 * Claude Code's entrypoint (`cli` is a person at a terminal; `sdk-*` is headless,
 * i.e. `claude -p` from a script or an API harness) > interactive.
 */
export function detectSource(explicit: string | undefined, env: Env, eventName?: string): Source {
  if (isSource(explicit)) return explicit;
  if (env.CLAUDE_METRICS_RUN_ID) return 'ralph';
  if (eventName?.startsWith('ralph_')) return 'ralph';
  const entry = env.CLAUDE_CODE_ENTRYPOINT;
  if (entry && entry.startsWith('sdk')) return 'api';
  return 'interactive';
}

export function currentUser(env: Env): string | null {
  if (env.USER) return env.USER;
  if (env.LOGNAME) return env.LOGNAME;
  try {
    return (require('node:os') as typeof import('node:os')).userInfo().username;
  } catch {
    return null;
  }
}
