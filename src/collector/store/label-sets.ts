/**
 * Counter label sets parsed once per text, for `store.counters()`: a scrape of
 * /metrics reads every counter row (~5,000 at a million events), and parsing
 * each row's JSON again was a sixth of it. The counters table only grows and its
 * label texts repeat scrape after scrape, so the parsed object of a text is kept
 * and handed out again: the same object for the same text, which is also what
 * lets metric-families.ts keep each row's place in the families between scrapes.
 *
 * Objects are frozen: every caller shares them. The memo is bounded (a table
 * holding more distinct texts than that starts it afresh) so it can never grow
 * without end whatever is stored.
 */

export type LabelSet = Readonly<Record<string, string>>;

/** More distinct label texts than the counters of a bounded /metrics hold (≈5,000 at 10M events); past it, start afresh. */
const MAX_LABEL_SETS = 200_000;

export class LabelSets {
  private readonly byText = new Map<string, LabelSet>();

  constructor(private readonly max = MAX_LABEL_SETS) {}

  /** The parsed labels of a stored text (`labelsText`'s JSON): the same frozen object for the same text. */
  of(text: string): LabelSet {
    let labels = this.byText.get(text);
    if (labels === undefined) {
      if (this.byText.size >= this.max) this.byText.clear();
      labels = Object.freeze(JSON.parse(text) as Record<string, string>);
      this.byText.set(text, labels);
    }
    return labels;
  }
}
