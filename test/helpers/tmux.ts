/**
 * A private tmux server for driving a full-screen program as a person would:
 * type with `send-keys`, read the screen with `capture-pane`. Each Tmux has its
 * own socket (never the user's tmux server) and reads no ~/.tmux.conf; its
 * global environment is exactly the env it was created with.
 */
import { execFile } from 'node:child_process';
import { shellQuote } from '../../src/install/hook-command';

export interface PaneState {
  dead: boolean;
  status: number | null;
  pid: number;
}

export class Tmux {
  private last = new Map<string, string>();

  constructor(
    readonly socket: string,
    private readonly env: Record<string, string>,
  ) {}

  /** One tmux command; rejects with tmux's own message when it fails. */
  tmux(args: string[]): Promise<string> {
    return new Promise((resolve, reject) => {
      execFile('tmux', ['-u', '-f', '/dev/null', '-S', this.socket, ...args], { env: this.env, timeout: 20_000 }, (err, stdout, stderr) => {
        if (err) reject(new Error(`tmux ${args.join(' ')}: ${stderr.trim() || err.message}`));
        else resolve(stdout);
      });
    });
  }

  /**
   * A detached session of width × height running argv in cwd (the pane stays
   * after the program exits, so its last screen can still be read).
   */
  async start(name: string, argv: string[], opts: { cwd: string; env?: Record<string, string>; width?: number; height?: number }): Promise<void> {
    const extra = Object.entries(opts.env ?? {}).flatMap(([k, v]) => ['-e', `${k}=${v}`]);
    const cmd = `exec ${argv.map(shellQuote).join(' ')}`;
    await this.tmux(['new-session', '-d', '-s', name, '-x', String(opts.width ?? 160), '-y', String(opts.height ?? 45), '-c', opts.cwd, ...extra, cmd, ';', 'set-option', '-w', '-t', name, 'remain-on-exit', 'on']);
  }

  /** The screen as plain text (wrapped lines joined). */
  async capture(name: string): Promise<string> {
    try {
      const text = await this.tmux(['capture-pane', '-p', '-J', '-t', name]);
      this.last.set(name, text);
      return text;
    } catch {
      return this.last.get(name) ?? '';
    }
  }

  /** The last screen read from this session (also after it is gone). */
  lastScreen(name: string): string {
    return this.last.get(name) ?? '';
  }

  /** Types text literally (no key names), as a person would. */
  async type(name: string, text: string): Promise<void> {
    await this.tmux(['send-keys', '-t', name, '-l', text]);
  }

  /** Presses named keys (`Enter`, `Escape`, `C-c`). */
  async press(name: string, ...keys: string[]): Promise<void> {
    await this.tmux(['send-keys', '-t', name, ...keys]);
  }

  async pane(name: string): Promise<PaneState> {
    const out = (await this.tmux(['display-message', '-p', '-t', name, '#{pane_dead} #{pane_dead_status} #{pane_pid}'])).trim().split(' ');
    return { dead: out[0] === '1', status: out[1] ? Number(out[1]) : null, pid: Number(out[2]) };
  }

  /**
   * Polls the screen until it matches (bounded). On timeout the error carries
   * the last screen, so a failure shows what the person would have seen.
   */
  async waitForScreen(name: string, re: RegExp, { timeoutMs = 90_000, intervalMs = 200 } = {}): Promise<RegExpExecArray> {
    const until = Date.now() + timeoutMs;
    let screen = '';
    do {
      screen = await this.capture(name);
      const m = re.exec(screen);
      if (m) return m;
      await new Promise((r) => setTimeout(r, intervalMs));
    } while (Date.now() < until);
    throw new Error(`tmux: the screen of ${name} did not show ${re} within ${timeoutMs} ms; it shows:\n${screen}`);
  }

  /** Kills one session: its pane's program gets SIGHUP, as when a terminal window is closed. */
  async killSession(name: string): Promise<void> {
    await this.tmux(['kill-session', '-t', name]);
  }

  /** Ends the server and everything still running in it (cleanup). */
  async killServer(): Promise<void> {
    await this.tmux(['kill-server']).catch(() => undefined);
  }
}
