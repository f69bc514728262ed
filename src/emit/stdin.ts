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
 * Reads the hook's input without `process.stdin`, which loads the net/stream
 * machinery (~7 ms) that a hook whose collector is down never needs, and
 * without a blocking fs.read, which would park a libuv worker that process.exit
 * then waits for forever when the writer never closes. On Linux the pipe is
 * reopened through /proc with O_NONBLOCK and polled; elsewhere (or for a socket)
 * the stream is the fallback.
 */
export function readStdin(fd: number, opts: { timeoutMs: number; maxBytes: number }): Promise<StdinResult> {
  const fs = require('node:fs') as typeof import('node:fs');
  const empty: StdinResult = { text: '', truncated: false, timedOut: false, bytes: 0 };
  try {
    if (fs.fstatSync(fd).isCharacterDevice()) return Promise.resolve(empty);
  } catch {
    return Promise.resolve(empty);
  }
  let nb: number | null = null;
  if (process.platform === 'linux') {
    try {
      nb = fs.openSync(`/proc/self/fd/${fd}`, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
    } catch {
      nb = null;
    }
  }
  if (nb === null) return readStream(opts);
  const nbFd = nb;
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let kept = 0;
    let total = 0;
    const until = Date.now() + Math.max(1, opts.timeoutMs);
    const buf = Buffer.allocUnsafe(256 * 1024);
    const finish = (timedOut: boolean) => {
      try {
        fs.closeSync(nbFd);
      } catch {
        /* already closed */
      }
      resolve({ text: Buffer.concat(chunks).toString('utf8'), truncated: total > kept, timedOut, bytes: total });
    };
    const poll = () => {
      for (;;) {
        let n: number;
        try {
          n = fs.readSync(nbFd, buf, 0, buf.length, null);
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code === 'EAGAIN') {
            if (Date.now() >= until) return finish(true);
            setTimeout(poll, 1); // the writer has not closed yet
            return;
          }
          return finish(false);
        }
        if (n === 0) return finish(false);
        total += n;
        if (kept < opts.maxBytes) {
          const take = Math.min(n, opts.maxBytes - kept);
          chunks.push(Buffer.from(buf.subarray(0, take)));
          kept += take;
        }
        if (Date.now() >= until) return finish(true);
      }
    };
    poll();
  });
}

function readStream(opts: { timeoutMs: number; maxBytes: number }): Promise<StdinResult> {
  const stream = process.stdin;
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let kept = 0;
    let total = 0;
    let done = false;
    const finish = (timedOut: boolean) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      stream.removeAllListeners('data');
      stream.pause();
      resolve({ text: Buffer.concat(chunks).toString('utf8'), truncated: total > kept, timedOut, bytes: total });
    };
    const timer = setTimeout(() => finish(true), Math.max(1, opts.timeoutMs));
    stream.on('data', (c: Buffer) => {
      total += c.length;
      if (kept < opts.maxBytes) {
        const take = Math.min(c.length, opts.maxBytes - kept);
        chunks.push(take === c.length ? c : c.subarray(0, take));
        kept += take;
      }
    });
    stream.on('end', () => finish(false));
    stream.on('error', () => finish(false));
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
