/**
 * The command line Claude Code runs for our hooks, and how we recognize one of
 * ours (ours now, or an older shape of it) in a settings file. Pure.
 */

/** Quote one word for a POSIX shell: bare when it is plainly safe, else single quotes. */
export function shellQuote(word: string): string {
  if (word !== '' && /^[A-Za-z0-9_\/.,:@%+=-]+$/.test(word)) return word;
  return `'${word.replace(/'/g, `'\\''`)}'`;
}

/**
 * Where the hook runs us from: a checkout/npm install (node + the bin/claude-metrics
 * launcher, and beside it the fast hook script and dist/cli.cjs) or the single binary.
 */
export type SelfLocation = { kind: 'node'; node: string; bin: string; hookScript?: string; cli?: string } | { kind: 'binary'; path: string; hookScript?: string };

/**
 * Which hook: `fast`, the POSIX sh script that spools the input and leaves the
 * rest to a drainer (~10 ms a hook), or `emit`, one Node process per hook that
 * sends the event itself (Node's start-up plus ~20 ms).
 */
export type HookMode = 'fast' | 'emit';

/**
 * `/bin/sh '/abs/repo/bin/claude-metrics-hook' '/abs/node' '/abs/repo/dist/cli.cjs'` (fast),
 * `'/abs/node' '/abs/repo/bin/claude-metrics' emit`; from the single binary `/bin/sh '…/claude-metrics-hook'
 * '/abs/claude-metrics'` or `/abs/claude-metrics emit`: absolute, never npx.
 */
export function hookCommandFor(self: SelfLocation, mode: HookMode = 'fast'): string {
  if (self.kind === 'binary') return mode === 'fast' && self.hookScript ? `/bin/sh ${shellQuote(self.hookScript)} ${shellQuote(self.path)}` : `${shellQuote(self.path)} emit`;
  if (mode === 'fast' && self.hookScript && self.cli) return `/bin/sh ${shellQuote(self.hookScript)} ${shellQuote(self.node)} ${shellQuote(self.cli)}`;
  return `${shellQuote(self.node)} ${shellQuote(self.bin)} emit`;
}

/** The fast hook's script word in a command, if it is one (`…/claude-metrics-hook`). */
export function fastHookScript(words: readonly string[]): number {
  return words.findIndex((w) => w.slice(w.lastIndexOf('/') + 1) === 'claude-metrics-hook');
}

/** The executable words of a hook command (for doctor: do they exist and run?). */
export function splitHookCommand(cmd: string): string[] {
  const words: string[] = [];
  let cur = '';
  let inWord = false;
  for (let i = 0; i < cmd.length; i++) {
    const c = cmd[i]!;
    if (c === "'") {
      const end = cmd.indexOf("'", i + 1);
      cur += end === -1 ? cmd.slice(i + 1) : cmd.slice(i + 1, end);
      i = end === -1 ? cmd.length : end;
      inWord = true;
    } else if (c === '"') {
      let j = i + 1;
      for (; j < cmd.length && cmd[j] !== '"'; j++) {
        if (cmd[j] === '\\' && j + 1 < cmd.length) j++;
        cur += cmd[j];
      }
      i = j;
      inWord = true;
    } else if (c === '\\' && i + 1 < cmd.length) {
      cur += cmd[++i];
      inWord = true;
    } else if (/\s/.test(c)) {
      if (inWord) words.push(cur);
      cur = '';
      inWord = false;
    } else {
      cur += c;
      inWord = true;
    }
  }
  if (inWord) words.push(cur);
  return words;
}

/**
 * Is this hook command one of ours (any version)? Ours runs `claude-metrics … emit`
 * (the launcher, the single binary, an npx line of an early version, or a path
 * inside a claude-metrics checkout such as `…/claude-metrics/dist/cli.cjs emit`)
 * or `…/dist/emit.cjs` directly. A word merely containing the name
 * (`my-claude-metrics-wrapper`) or another subcommand (`claude-metrics flush`) is not.
 */
export function isOurHookCommand(cmd: unknown): boolean {
  if (typeof cmd !== 'string') return false;
  const words = splitHookCommand(cmd);
  if (fastHookScript(words) !== -1) return true;
  if (words.some((w) => /(^|\/)dist\/emit\.c?js$/.test(w))) return true;
  const nameAt = words.findIndex(isOurProgramWord);
  if (nameAt === -1) return false;
  // The subcommand is the first word after the program that is not a flag.
  for (let i = nameAt + 1; i < words.length; i++) {
    const w = words[i]!;
    if (w.startsWith('-')) continue;
    return w === 'emit';
  }
  return false;
}

/** The launcher or binary (`…/claude-metrics`, `claude-metrics@1.2.3` for npx), or a script inside a claude-metrics checkout. */
function isOurProgramWord(word: string): boolean {
  const base = word.slice(word.lastIndexOf('/') + 1);
  if (/^claude-metrics(\.exe|@[^/\s]*)?$/.test(base)) return true;
  return /(^|\/)claude-metrics[^/]*\/(dist|bin)\/[^/]+$/.test(word);
}
