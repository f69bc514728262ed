/**
 * Reads stdin with a deadline and a size cap. A hook always closes stdin, but a
 * shell loop or cron may hand us one that never closes, or a huge one; neither
 * may hold `emit` past its deadline.
 */

export interface StdinResult {
  text: string;
  /** More bytes were offered than the cap; `text` holds the first `maxBytes`. */
  truncated: boolean;
  /** The deadline came before end-of-input. */
  timedOut: boolean;
  bytes: number;
}

/**
 * Reads fd 0 with plain fs.read: `process.stdin` would load the net/stream
 * machinery (~7 ms) that a hook whose collector is down never needs. A read that
 * never returns only ties up a libuv worker thread; the process exits anyway.
 */
export function readStdin(fd: number, opts: { timeoutMs: number; maxBytes: number }): Promise<StdinResult> {
  const { read, fstatSync } = require('node:fs') as typeof import('node:fs');
  return new Promise((resolve) => {
    try {
      if (fstatSync(fd).isCharacterDevice()) {
        resolve({ text: '', truncated: false, timedOut: false, bytes: 0 });
        return;
      }
    } catch {
      resolve({ text: '', truncated: false, timedOut: false, bytes: 0 });
      return;
    }
    const chunks: Buffer[] = [];
    let kept = 0;
    let total = 0;
    let done = false;
    const finish = (timedOut: boolean) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      resolve({ text: Buffer.concat(chunks).toString('utf8'), truncated: total > kept, timedOut, bytes: total });
    };
    const timer = setTimeout(() => finish(true), Math.max(1, opts.timeoutMs));
    const buf = Buffer.allocUnsafe(256 * 1024);
    const next = () => {
      if (done) return;
      read(fd, buf, 0, buf.length, null, (err, n) => {
        if (done) return;
        if (err) {
          // A non-blocking pipe with nothing yet: try again shortly (the deadline still holds).
          if ((err as NodeJS.ErrnoException).code === 'EAGAIN') setTimeout(next, 2);
          else finish(false);
          return;
        }
        if (n === 0) return finish(false);
        total += n;
        if (kept < opts.maxBytes) {
          const take = Math.min(n, opts.maxBytes - kept);
          chunks.push(Buffer.from(buf.subarray(0, take)));
          kept += take;
        }
        next();
      });
    };
    next();
  });
}

/** Is fd 0 a terminal? (fstat, not `tty`, which loads net.) */
export function stdinIsTerminal(fd = 0): boolean {
  try {
    return (require('node:fs') as typeof import('node:fs')).fstatSync(fd).isCharacterDevice();
  } catch {
    return false;
  }
}

/**
 * When the input was cut, JSON.parse fails; the identifying fields come first in
 * Claude Code's payloads, so pull them out of the head to still record the event.
 */
export function salvageHookFields(head: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const key of ['hook_event_name', 'session_id', 'tool_name', 'tool_use_id', 'cwd', 'transcript_path', 'agent_id']) {
    const m = new RegExp(`"${key}"\\s*:\\s*"((?:[^"\\\\]|\\\\.){0,4096})"`).exec(head);
    if (m) {
      try {
        out[key] = JSON.parse(`"${m[1]}"`) as string;
      } catch {
        /* skip a broken escape */
      }
    }
  }
  return out;
}
