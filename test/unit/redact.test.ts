import { describe, expect, it } from 'vitest';
import { capBytes, maskSecrets, redactContent } from '../../src/redact';

// Each row: input, a substring that must be gone, and one that must remain.
const CASES: Array<[string, string, string, string]> = [
  ['anthropic key', 'export KEY=sk-ant-api03-AbCdEfGhIjKlMnOpQrStUvWxYz012345', 'AbCdEfGhIjKlMnOpQrSt', '[REDACTED'],
  ['openai key', 'client = OpenAI(api_key="sk-proj-abcdefghijklmnopqrstuvwxyz123456")', 'abcdefghijklmnopqrstuvwxyz123456', 'OpenAI('],
  ['github token', 'git clone https://ghp_0123456789abcdefghijABCDEFGHIJ012345@github.com/x/y', 'ghp_0123456789abcdef', 'github.com/x/y'],
  ['aws access key', 'aws configure set aws_access_key_id AKIAIOSFODNN7EXAMPLE', 'AKIAIOSFODNN7EXAMPLE', 'aws configure set'],
  ['aws secret env', 'AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY', 'wJalrXUtnFEMI', 'AWS_SECRET_ACCESS_KEY='],
  ['bearer header', 'curl -H "Authorization: Bearer abc.def.ghi-jkl_mno123"', 'abc.def.ghi-jkl_mno123', 'Authorization: Bearer'],
  ['private key block', '-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA7\nabc\n-----END RSA PRIVATE KEY-----\nafter', 'MIIEowIBAAKCAQEA7', 'after'],
  ['openssh private key', '-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAA\n-----END OPENSSH PRIVATE KEY-----', 'b3BlbnNzaC1rZXktdjEAAAA', 'REDACTED:private-key'],
  ['password in url', 'DATABASE_URL=postgres://app:hunter2@db.internal:5432/app', 'hunter2', 'db.internal:5432/app'],
  ['password in url, no env name', 'psql postgres://admin:s3cr3t!@10.0.0.1/db', 's3cr3t!', 'postgres://admin:'],
  ['.env password', 'DB_PASSWORD="correct horse battery staple"', 'correct horse', 'DB_PASSWORD='],
  ['.env token lowercase', 'export github_token=abcdef123456', 'abcdef123456', 'github_token='],
  ['yaml secret', 'client_secret: 9f8e7d6c5b4a', '9f8e7d6c5b4a', 'client_secret:'],
  ['json password', '{"user":"bob","password":"p@ss\\"word"}', 'p@ss', '"user":"bob"'],
  ['slack token', 'SLACK=xoxb-1234567890-abcdefghij', 'xoxb-1234567890-abcdefghij', 'SLACK='],
  ['google api key', 'key=AIzaSyA1234567890abcdefghijklmnopqrstuv', 'AIzaSyA1234567890abcdefghijklmnopqrstuv', 'key='],
  ['jwt', 'token eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N', 'eyJzdWIiOiIxMjM0NTY3ODkwIn0', 'token '],
  ['stripe key', 'stripe.api_key = "sk_live_4eC39HqLyjWDarjtT1zdp7dc"', '4eC39HqLyjWDarjtT1zdp7dc', 'stripe.api_key'],
];

describe('maskSecrets', () => {
  it.each(CASES)('masks %s', (_name, input, secret, kept) => {
    const out = maskSecrets(input);
    expect(out).not.toContain(secret);
    expect(out).toContain(kept);
  });

  it('leaves ordinary text alone', () => {
    const text = 'ls -la src/ && npm test -- --run; echo "done" # tokens: 1234, max_tokens=4096, PWD=/home/me, password policy docs';
    expect(maskSecrets(text)).toBe(text);
  });

  it('is idempotent', () => {
    for (const [, input] of CASES) expect(maskSecrets(maskSecrets(input))).toBe(maskSecrets(input));
  });
});

describe('capBytes', () => {
  it('keeps short text', () => expect(capBytes('héllo', 100)).toBe('héllo'));
  it('cuts at a character boundary and says how much', () => {
    const out = capBytes('ééééé', 3); // 10 bytes; byte 3 is inside the second é
    expect(out.startsWith('é')).toBe(true);
    expect(out).toContain('[truncated 8 bytes]');
    expect(out).not.toContain('\uFFFD');
  });
});

describe('redactContent', () => {
  it('masks before capping so a cut never exposes half a key', () => {
    const out = redactContent({ cmd: 'echo sk-ant-api03-AbCdEfGhIjKlMnOpQrStUvWxYz012345' }, 40);
    expect(out).not.toContain('AbCdEfGh');
  });
  it('survives values JSON cannot serialize', () => {
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    expect(redactContent(cyclic, 100)).toBe('[unserializable]');
  });
});
