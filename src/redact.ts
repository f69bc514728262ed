/**
 * The secret masker for opted-in content. Pure: a table of patterns, applied in
 * order, each replacing the secret (not its label) with `[REDACTED:<kind>]`, then
 * a size cap. Errs on the side of masking: a false positive costs a word of
 * context, a false negative leaks a credential off the machine.
 */

interface Rule {
  kind: string;
  re: RegExp;
  /** Replacement; `$1` keeps a captured prefix such as a variable name. */
  to: string;
}

const R = (kind: string, re: RegExp, to = `[REDACTED:${kind}]`): Rule => ({ kind, re, to });

export const RULES: readonly Rule[] = [
  R('private-key', /-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----[\s\S]*?(?:-----END [A-Z0-9 ]*PRIVATE KEY-----|$)/g),
  R('url-password', /\b([a-z][a-z0-9+.-]*:\/\/[^\s:/@[\]]+:)(?!\[REDACTED)[^\s@/]+@/gi, '$1[REDACTED:url-password]@'),
  R('bearer', /\b(Bearer\s+)[A-Za-z0-9._~+/=-]{8,}/gi, '$1[REDACTED:bearer]'),
  R('basic-auth', /\b(Basic\s+)[A-Za-z0-9+/=]{12,}/g, '$1[REDACTED:basic-auth]'),
  R('anthropic-key', /\bsk-ant-[A-Za-z0-9_-]{16,}/g),
  R('openai-key', /\bsk-(?:proj-|svcacct-)?[A-Za-z0-9_-]{20,}/g),
  R('github-token', /\b(?:gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{30,})/g),
  R('aws-access-key', /\b(?:AKIA|ASIA|AGPA|AIDA|AROA|ANPA)[0-9A-Z]{16}\b/g),
  R('slack-token', /\bxox[abposr]-[A-Za-z0-9-]{10,}/g),
  R('google-api-key', /\bAIza[0-9A-Za-z_-]{35}\b/g),
  R('stripe-key', /\b[rs]k_(?:live|test)_[A-Za-z0-9]{16,}/g),
  R('jwt', /\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}/g),
  // .env / shell / YAML assignments whose name says secret: keep the name, mask the value.
  // The secret word must end the name or be followed by a separator, so
  // `max_tokens=1000` stays and `SECRET_KEY_BASE=…` goes.
  R(
    'assignment',
    /\b((?:export\s+)?[A-Za-z0-9_.-]*?(?:SECRET|TOKEN|PASSWORD|PASSWD|API_?KEY|ACCESS_?KEY|PRIVATE_?KEY|CREDENTIALS?)(?:[_.-][A-Za-z0-9_.-]*)?\s*[=:]\s*)(?!\[REDACTED)("[^"\n]*"|'[^'\n]*'|[^\s"',;]+)/gi,
    '$1[REDACTED:assignment]',
  ),
  // JSON: "password": "…", "api_key": "…"
  R('json-secret', /("(?:[A-Za-z0-9_-]*(?:secret|token|password|passwd|api_?key|access_?key|private_?key|credentials?)[A-Za-z0-9_-]*)"\s*:\s*)"(?!\[REDACTED)[^"\\]*(?:\\.[^"\\]*)*"/gi, '$1"[REDACTED:json-secret]"'),
];

/** Masks every secret the rules know. Idempotent: masking twice equals masking once. */
export function maskSecrets(text: string): string {
  let out = text;
  for (const rule of RULES) out = out.replace(rule.re, rule.to);
  return out;
}

/** Caps a string at `maxBytes` of UTF-8 (never splitting a character) and says how much was cut. */
export function capBytes(text: string, maxBytes: number): string {
  const buf = Buffer.from(text, 'utf8');
  if (buf.length <= maxBytes) return text;
  let end = maxBytes;
  // Back up to a character boundary: continuation bytes are 10xxxxxx.
  while (end > 0 && (buf[end]! & 0xc0) === 0x80) end--;
  return `${buf.subarray(0, end).toString('utf8')}…[truncated ${buf.length - end} bytes]`;
}

/** What opted-in content goes through: mask first (so a cut never exposes half a key), then cap. */
export function redactContent(value: unknown, maxBytes: number): string {
  let text: string;
  if (typeof value === 'string') text = value;
  else {
    try {
      text = JSON.stringify(value) ?? '';
    } catch {
      text = '[unserializable]';
    }
  }
  return capBytes(maskSecrets(text), maxBytes);
}
