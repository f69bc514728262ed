/**
 * The files the fast hook (bin/claude-metrics-hook) leaves in the inbox, pure:
 *
 *   claude-metrics-hook 1\n
 *   NAME=value\0 … (the environment the event needs)\n
 *   <the hook's stdin, as Claude Code wrote it>\n
 *   \0claude-metrics-hook end\n
 *
 * A file without the end mark is still being written, or its writer was killed.
 */
export const RAW_HEADER = 'claude-metrics-hook 1\n';
export const RAW_END = '\n\0claude-metrics-hook end\n';

export type RawHook =
  | { complete: true; env: Record<string, string>; input: string }
  | { complete: false; reason: 'unfinished' | 'not a hook file' };

export function parseRawHook(bytes: Buffer): RawHook {
  const header = Buffer.from(RAW_HEADER);
  if (bytes.length < header.length || !bytes.subarray(0, header.length).equals(header)) return { complete: false, reason: 'not a hook file' };
  const end = Buffer.from(RAW_END);
  if (bytes.length < header.length + end.length || !bytes.subarray(bytes.length - end.length).equals(end)) return { complete: false, reason: 'unfinished' };
  // The environment block ends at the first "\0\n"; values never hold a NUL.
  const envEnd = bytes.indexOf('\0\n', header.length);
  if (envEnd < 0) return { complete: false, reason: 'not a hook file' };
  const env: Record<string, string> = {};
  for (const pair of bytes.toString('utf8', header.length, envEnd).split('\0')) {
    const eq = pair.indexOf('=');
    if (eq > 0) env[pair.slice(0, eq)] = pair.slice(eq + 1); // empty = unset in the hook's environment
  }
  const input = bytes.toString('utf8', envEnd + 2, bytes.length - end.length);
  return { complete: true, env, input };
}

/**
 * The hook's input from an inbox file the disk cut short (the fast hook pipes
 * what reached the file, then the rest of its stdin, to `emit`): the text after
 * the environment block, without the end mark if it got that far. Text without
 * the header is returned as it is.
 */
export function inputOfPartial(text: string): string {
  if (!text.startsWith(RAW_HEADER)) return text;
  const envEnd = text.indexOf('\0\n', RAW_HEADER.length);
  if (envEnd < 0) return '';
  const rest = text.slice(envEnd + 2);
  return rest.endsWith(RAW_END) ? rest.slice(0, -RAW_END.length) : rest;
}
