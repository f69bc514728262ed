/** Prices never guessed for a newer model, and the fact rules that make a request count once. */
import { describe, expect, it } from 'vitest';
import { factCost, foldUsage, sessionCost, usageDelta, type UsageFact } from '../../src/collector/facts';
import { PriceTable } from '../../src/transcript/pricing';

const T = { input_tokens: 2400, output_tokens: 160, cache_creation_input_tokens: 6000, cache_read_input_tokens: 1000 };

describe('prices', () => {
  const p = new PriceTable();
  it('claude-opus-4-8 costs what Claude Code 2.1.197 charged (0.054), not Opus 4’s three times that', () => {
    expect(p.cost('claude-opus-4-8', T)).toBeCloseTo(0.054, 12);
    expect(p.cost('claude-opus-4-8[1m]', T)).toBeCloseTo(0.054, 12);
    expect(p.cost('claude-opus-5-5', T)).toBeCloseTo(0.043, 12); // 2.1.331/2.1.332's default
  });
  it('no prefix match continues a version: newer models are unpriced, not priced as an older generation', () => {
    for (const m of ['claude-opus-4-7', 'claude-opus-4-9', 'claude-opus-4-10', 'claude-sonnet-4-7', 'claude-haiku-4-6', 'claude-opus-5', 'claude-opus-6-0', 'gpt-4o']) {
      expect(p.priceOf(m), m).toBeUndefined();
      expect(p.costOrNull(m, T), m).toBeNull();
    }
  });
  it('dated, provider-prefixed and suffixed names of a known model keep its price', () => {
    expect(p.priceOf('claude-opus-4-20250514')).toEqual(p.priceOf('claude-opus-4'));
    expect(p.priceOf('claude-sonnet-4-5-20250929')).toEqual(p.priceOf('claude-sonnet-4-5'));
    expect(p.priceOf('us.anthropic.claude-opus-4-8-v1:0')).toEqual(p.priceOf('claude-opus-4-8'));
    expect(p.priceOf('claude-3-5-sonnet-latest')).toEqual(p.priceOf('claude-3-5-sonnet'));
    expect(p.priceOf('claude-opus-4-1-thinking')).toEqual(p.priceOf('claude-opus-4-1'));
  });
});

const fact = (over: Partial<UsageFact> = {}): UsageFact => ({ model: 'm', ...T, claude_cost: null, estimate: null, ...over });

describe('facts', () => {
  it('a request folds the same in any order and on replay; Claude Code’s cost wins', () => {
    const parts = [fact({ estimate: 0.081 }), fact({ claude_cost: 0.027 }), fact({ output_tokens: 10, estimate: 0.05 })];
    const orders = [[0, 1, 2], [2, 1, 0], [1, 0, 2, 1, 0]];
    const folded = orders.map((o) => o.reduce<UsageFact | undefined>((f, i) => foldUsage(f, parts[i]!), undefined)!);
    for (const f of folded) expect(f).toEqual(folded[0]);
    expect(factCost(folded[0]!)).toEqual({ cost: 0.027, source: 'claude_code' });
    expect(folded[0]!.output_tokens).toBe(160); // the largest report per kind
  });
  it('deltas sum to the final fact whatever the path', () => {
    let f: UsageFact | undefined;
    const sum = { input_tokens: 0, cost_usd: 0, claude_cost_requests: 0, estimate_cost_requests: 0, unpriced_requests: 0, usage_event: 0 };
    for (const c of [fact(), fact({ estimate: 0.081 }), fact({ claude_cost: 0.027 })]) {
      const next = foldUsage(f, c);
      const d = usageDelta(f, next);
      for (const k of Object.keys(sum) as Array<keyof typeof sum>) sum[k] += d[k];
      f = next;
    }
    expect({ ...sum, cost_usd: Math.round(sum.cost_usd * 1e12) / 1e12 }).toEqual({ input_tokens: 2400, cost_usd: 0.027, claude_cost_requests: 1, estimate_cost_requests: 0, unpriced_requests: 0, usage_event: 1 });
  });
  it('a session’s cost: a run result first, then Claude Code per request, estimate if any request is estimated, else none', () => {
    const base = { usage_events: 2, cost_usd: 0.05, claude_cost_requests: 1, estimate_cost_requests: 1, unpriced_requests: 0, result_cost_usd: null };
    expect(sessionCost({ ...base, result_cost_usd: 0.07 })).toEqual({ cost_usd: 0.07, cost_source: 'claude_code' });
    expect(sessionCost(base).cost_source).toBe('estimate');
    expect(sessionCost({ ...base, estimate_cost_requests: 0 }).cost_source).toBe('claude_code');
    expect(sessionCost({ ...base, claude_cost_requests: 0, estimate_cost_requests: 0, unpriced_requests: 2, cost_usd: 0 }).cost_source).toBe('none');
    expect(sessionCost({ ...base, usage_events: 0, claude_cost_requests: 0, estimate_cost_requests: 0, cost_usd: 0 }).cost_source).toBe('none');
  });
});
