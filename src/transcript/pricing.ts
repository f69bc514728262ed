/**
 * Offline prices for Claude models, USD per million tokens. Source: Anthropic's
 * published API prices as mirrored in LiteLLM's model_prices_and_context_window.json
 * (what ccusage 20 uses), checked 2026-11 against the fixtures' (test/fixtures/transcripts) ccusage
 * output to the cent. Long-context rates apply per line and per token kind to
 * the tokens above 200k, for the models that have them (Sonnet 4 / 4.5), as
 * ccusage does. Override with `--pricing FILE` (same shape, merged over these).
 *
 * A price is never guessed: a model matches an entry exactly (after
 * normalization) or as the entry followed by a non-version suffix, so
 * `claude-opus-4-8` is not `claude-opus-4` and a model released after this
 * table was written is unpriced (tokens counted, cost left to Claude Code's own
 * figure when the collector has it), not charged at an older generation's rate.
 */
import { readFileSync } from 'node:fs';

export interface ModelPrice {
  input: number;
  output: number;
  cache_write: number;
  cache_read: number;
  /** Rates for tokens above 200k in one request, where the model has a long-context tier. */
  input_above_200k?: number;
  output_above_200k?: number;
  cache_write_above_200k?: number;
  cache_read_above_200k?: number;
}

const SONNET_4: ModelPrice = { input: 3, output: 15, cache_write: 3.75, cache_read: 0.3, input_above_200k: 6, output_above_200k: 22.5, cache_write_above_200k: 7.5, cache_read_above_200k: 0.6 };
const SONNET_3: ModelPrice = { input: 3, output: 15, cache_write: 3.75, cache_read: 0.3 };
const OPUS_4: ModelPrice = { input: 15, output: 75, cache_write: 18.75, cache_read: 1.5 };
const OPUS_45: ModelPrice = { input: 5, output: 25, cache_write: 6.25, cache_read: 0.5 };

/** Exact entries after normalization; see `lookup` for the only suffixes allowed. */
export const PRICES: Record<string, ModelPrice> = {
  // Claude Code 2.1.331/2.1.332's default model; prices measured from its own total_cost_usd (one token
  // kind at a time against a fake API), since it is newer than the published tables we mirror.
  'claude-opus-5-5': { input: 4, output: 20, cache_write: 5, cache_read: 0.2 },
  // Claude Code 2.1.197's default model; measured the same way: 2400 input, 160 output, 6000
  // cache-write, 1000 cache-read tokens = total_cost_usd 0.054 (also OTel api_request cost_usd 0.027 per half).
  'claude-opus-4-8': OPUS_45,
  'claude-opus-4-5': OPUS_45,
  'claude-opus-4-6': OPUS_45,
  'claude-opus-4-1': OPUS_4,
  'claude-opus-4': OPUS_4,
  'claude-sonnet-4-5': SONNET_4,
  'claude-sonnet-4': SONNET_4,
  'claude-haiku-4-5': { input: 1, output: 5, cache_write: 1.25, cache_read: 0.1 },
  'claude-3-7-sonnet': SONNET_3,
  'claude-3-5-sonnet': SONNET_3,
  'claude-3-sonnet': SONNET_3,
  'claude-3-5-haiku': { input: 0.8, output: 4, cache_write: 1, cache_read: 0.08 },
  'claude-3-haiku': { input: 0.25, output: 1.25, cache_write: 0.3, cache_read: 0.03 },
  'claude-3-opus': OPUS_4,
};

export interface Tokens {
  input_tokens: number;
  output_tokens: number;
  cache_creation_input_tokens: number;
  cache_read_input_tokens: number;
}

/** Adds `t`'s four token counts into `into`. */
export function addTokens(into: Tokens, t: Tokens): void {
  into.input_tokens += t.input_tokens;
  into.output_tokens += t.output_tokens;
  into.cache_creation_input_tokens += t.cache_creation_input_tokens;
  into.cache_read_input_tokens += t.cache_read_input_tokens;
}

/** `anthropic/claude-sonnet-4-5@20250929`, `us.anthropic.claude-…-v1:0`, `claude-sonnet-4-5-20250929` → `claude-sonnet-4-5`. */
export function normalizeModel(model: string): string {
  let m = model.toLowerCase().trim();
  m = m.replace(/^.*?(claude-)/, '$1'); // provider prefixes (anthropic/, bedrock regions, vertex)
  m = m.replace(/\[[^\]]*\]$/, ''); // Claude Code's context marker: `claude-opus-4-8[1m]`
  m = m.replace(/[@:].*$/, ''); // vertex @version, bedrock :0
  m = m.replace(/-v\d+$/, '');
  m = m.replace(/-\d{8}$/, ''); // date suffix
  m = m.replace(/-latest$/, '');
  return m;
}

/** One token kind's cost at the base rate, and above 200k tokens at `high` where the model has that tier. */
const part = (n: number, base: number, high: number | undefined) => (high === undefined || n <= 200_000 ? n * base : 200_000 * base + (n - 200_000) * high);

export class PriceTable {
  private readonly table: Record<string, ModelPrice>;
  private readonly keys: string[];
  private readonly resolved = new Map<string, ModelPrice | undefined>();

  constructor(overrides: Record<string, ModelPrice> = {}) {
    this.table = { ...PRICES };
    for (const [k, v] of Object.entries(overrides)) this.table[normalizeModel(k)] = v;
    this.keys = Object.keys(this.table).sort((a, b) => b.length - a.length);
  }

  static fromFile(path: string): PriceTable {
    const raw = JSON.parse(readFileSync(path, 'utf8')) as { models?: Record<string, ModelPrice> } | Record<string, ModelPrice>;
    const models = (raw as { models?: Record<string, ModelPrice> }).models ?? (raw as Record<string, ModelPrice>);
    for (const [k, v] of Object.entries(models)) {
      for (const f of ['input', 'output', 'cache_write', 'cache_read'] as const) {
        if (typeof v?.[f] !== 'number' || v[f] < 0) throw new Error(`pricing file ${path}: ${k}.${f} must be a number ≥ 0 (USD per million tokens)`);
      }
    }
    return new PriceTable(models);
  }

  /** The price of a model, or undefined when unknown (unpriced: its cost is reported as unknown, never guessed). */
  priceOf(model: string | undefined): ModelPrice | undefined {
    if (!model) return undefined;
    // A report asks once per line and a tree has a handful of models: normalizing each time was 5% of `usage`.
    if (this.resolved.has(model)) return this.resolved.get(model);
    const price = this.lookup(normalizeModel(model));
    this.resolved.set(model, price);
    return price;
  }

  private lookup(m: string): ModelPrice | undefined {
    const exact = this.table[m];
    if (exact) return exact;
    // A suffix may qualify a model (`-thinking`, `-fast`) but never continue its version:
    // `claude-opus-4` + `-8` is another model, and so is `claude-3-5-haiku` + `-2`.
    const key = this.keys.find((k) => m.startsWith(k) && /^-[a-z]/.test(m.slice(k.length)));
    return key ? this.table[key] : undefined;
  }

  /** Cost of one request's usage, or null when the model has no price (unpriced, not free). */
  costOrNull(model: string | undefined, t: Tokens): number | null {
    return this.priceOf(model) ? this.cost(model, t) : null;
  }

  /** Cost of one request's usage, per token kind, with the >200k tier where the model has one. */
  cost(model: string | undefined, t: Tokens): number {
    const p = this.priceOf(model);
    if (!p) return 0;
    return (
      (part(t.input_tokens, p.input, p.input_above_200k) +
        part(t.output_tokens, p.output, p.output_above_200k) +
        part(t.cache_creation_input_tokens, p.cache_write, p.cache_write_above_200k) +
        part(t.cache_read_input_tokens, p.cache_read, p.cache_read_above_200k)) /
      1_000_000
    );
  }
}
