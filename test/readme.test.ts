/** The README stays honest about configuration: every setting and its variables are documented. */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CONFIG_SPEC } from '../src/config';
import { ROOT } from './helpers/cli';

const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');

describe('README', () => {
  it.each(Object.entries(CONFIG_SPEC))('documents %s and its environment variables', (key, spec) => {
    expect(readme).toContain(`\`${key}\``);
    for (const name of spec.env) expect(readme).toContain(`\`${name}\``);
  });
  it('starts with the two set-up commands, and CI runs the test one', () => {
    const ci = readFileSync(join(ROOT, '.ci', 'run'), 'utf8');
    expect(readme).toMatch(/```sh\n\.\/install\.sh[^\n]*\nnpm test/);
    expect(ci).toMatch(/^npm test$/m);
  });
});
