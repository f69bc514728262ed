/** The docs stay honest: every setting is documented, the set-up commands lead, and no link is dead. */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CONFIG_SPEC } from '../src/config';
import { ROOT } from './helpers/cli';

const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
const configuration = readFileSync(join(ROOT, 'docs', 'configuration.md'), 'utf8');

describe('README and docs', () => {
  it.each(Object.entries(CONFIG_SPEC))('docs/configuration.md documents %s and its environment variables', (key, spec) => {
    expect(configuration).toContain(`\`${key}\``);
    for (const name of spec.env) expect(configuration).toContain(`\`${name}\``);
  });
  it('starts with the two set-up commands, and CI runs the test one', () => {
    const ci = readFileSync(join(ROOT, '.ci', 'run'), 'utf8');
    expect(readme).toMatch(/```sh\n\.\/install\.sh[^\n]*\nnpm test/);
    expect(ci).toMatch(/^npm test$/m);
  });
  it('every relative link in README.md and docs/ points at a file of the checkout', () => {
    const files = ['README.md', ...readdirSync(join(ROOT, 'docs')).filter((f) => f.endsWith('.md')).map((f) => join('docs', f)), 'hooks-templates/README.md'];
    const dead: string[] = [];
    for (const f of files) {
      const text = readFileSync(join(ROOT, f), 'utf8');
      for (const m of text.matchAll(/\]\(([^)\s]+)\)/g)) {
        const target = m[1]!.split('#')[0]!;
        if (!target || /^[a-z]+:/i.test(target)) continue;
        if (!existsSync(join(ROOT, dirname(f), target))) dead.push(`${f}: ${m[1]}`);
      }
    }
    expect(dead).toEqual([]);
  });
});
