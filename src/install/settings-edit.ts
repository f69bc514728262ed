/**
 * Surgical edits of a Claude Code settings.json (JSON with comments): add or
 * remove our hook entries and nothing else. Comments, indentation (tabs or
 * spaces), line endings, key order, unrelated hooks and the trailing newline
 * survive because only the changed ranges are rewritten (jsonc-parser `modify`).
 * Pure: text in, text out.
 */
import { applyEdits, modify, parseTree, printParseErrorCode, findNodeAtLocation, getNodeValue, type Edit, type FormattingOptions, type Node, type ParseError } from './jsonc';
import { CliError } from '../errors';
import { isOurHookCommand } from './hook-command';

/** Tool events take a matcher ("*": every tool); the others have none. */
export const TOOL_EVENTS = new Set(['PreToolUse', 'PostToolUse', 'PostToolUseFailure', 'PermissionRequest']);

/**
 * What metrics need: PreToolUse (tool durations are measured from it),
 * PostToolUse and PostToolUseFailure (outcome), Stop/SubagentStop (turn end,
 * transcript usage), SessionStart/SessionEnd, UserPromptSubmit (turns), and,
 * in interactive sessions only, Notification and PermissionRequest (the
 * session waits for a person: a permission prompt, an idle prompt).
 */
export const DEFAULT_EVENTS = ['PreToolUse', 'PostToolUse', 'PostToolUseFailure', 'Stop', 'SubagentStop', 'SessionStart', 'SessionEnd', 'UserPromptSubmit', 'Notification', 'PermissionRequest'] as const;

/** Every hook event Claude Code 2.x knows (checked against the bundled CLI's schema). */
export const KNOWN_EVENTS = new Set<string>([...DEFAULT_EVENTS, 'PreCompact', 'SubagentStart']);

export const DEFAULT_TIMEOUT_S = 5;

export interface HookSpec {
  command: string;
  events: readonly string[];
  timeoutS: number;
  async: boolean;
}

export class SettingsError extends CliError {
  constructor(message: string, code = 'E_SETTINGS') {
    super(message, code, 1);
  }
}

/** Formatting to use for inserted text: follows what the file already does. */
export function detectFormatting(text: string): FormattingOptions {
  const eol = text.includes('\r\n') ? '\r\n' : '\n';
  let insertSpaces = true;
  let tabSize = 2;
  const m = /\n([ \t]+)["}\]/]/.exec(text);
  if (m) {
    const indent = m[1]!;
    if (indent.startsWith('\t')) {
      insertSpaces = false;
      tabSize = 1;
    } else tabSize = indent.length;
  }
  return { insertSpaces, tabSize, eol, insertFinalNewline: false };
}

function lineCol(text: string, offset: number): { line: number; column: number } {
  let line = 1;
  let col = 1;
  for (let i = 0; i < offset && i < text.length; i++) {
    if (text[i] === '\n') {
      line++;
      col = 1;
    } else col++;
  }
  return { line, column: col };
}

/** Parses the settings text; a malformed file is an error with line and column. Empty text is `{}`. */
export function parseSettings(text: string, file: string): Node | undefined {
  if (text.trim() === '') return undefined;
  const errors: ParseError[] = [];
  const root = parseTree(text, errors, { allowTrailingComma: true, disallowComments: false });
  if (errors.length > 0) {
    const e = errors[0]!;
    const { line, column } = lineCol(text, e.offset);
    throw new SettingsError(`${file}:${line}:${column}: not valid JSON (${printParseErrorCode(e.error)}); file left untouched`, 'E_SETTINGS_PARSE');
  }
  if (!root || root.type !== 'object') throw new SettingsError(`${file}: expected a JSON object at the top level; file left untouched`, 'E_SETTINGS_SHAPE');
  return root;
}

interface HookEntry {
  type?: unknown;
  command?: unknown;
  timeout?: unknown;
  async?: unknown;
}
interface MatcherGroup {
  matcher?: unknown;
  hooks?: unknown;
}

function ourEntry(spec: HookSpec): Record<string, unknown> {
  const entry: Record<string, unknown> = { type: 'command', command: spec.command, timeout: spec.timeoutS };
  if (spec.async) entry.async = true;
  return entry;
}

function sameEntry(a: HookEntry, b: Record<string, unknown>): boolean {
  return a.type === b.type && a.command === b.command && a.timeout === b.timeout && (a.async === true) === (b.async === true);
}

function groupFor(event: string, spec: HookSpec): Record<string, unknown> {
  const hooks = [ourEntry(spec)];
  return TOOL_EVENTS.has(event) ? { matcher: '*', hooks } : { hooks };
}

/** Applies one jsonc edit with line endings matching the file (jsonc-parser inserts "\n"). */
export function edit(text: string, path: Array<string | number>, value: unknown, fo: FormattingOptions, arrayInsert = false): string {
  if (value === undefined) return removeAt(text, path, fo);
  const edits: Edit[] = modify(text, path, value, { formattingOptions: fo, isArrayInsertion: arrayInsert });
  const eol = fo.eol ?? '\n';
  const fixed = eol === '\n' ? edits : edits.map((e) => ({ ...e, content: e.content.replace(/\r?\n/g, eol) }));
  return applyEdits(text, fixed);
}

/**
 * Appends a value to a non-empty array as `,<eol><indent><value>` after its last
 * element, indented like that element, and touches nothing else: jsonc-parser's
 * own insertion reformats the line it lands on, which rewrites a one-line entry
 * such as `{ "hooks": [ { "type": "command", "command": "notify-send Claude" } ] }`
 * (and uninstall could then not give the original bytes back). `removeAt` is its
 * exact inverse. Undefined when comments sit after the last element (jsonc-parser decides then).
 */
function appendElement(text: string, arr: Node, value: unknown, fo: FormattingOptions): string | undefined {
  const last = arr.children?.[arr.children.length - 1];
  if (!last) return undefined;
  const end = last.offset + last.length;
  if (!/^\s*\]$/.test(text.slice(end, arr.offset + arr.length))) return undefined;
  const lineStart = (at: number) => Math.max(text.lastIndexOf('\n', at - 1) + 1, 0);
  const indentOf = (at: number) => /^[ \t]*/.exec(text.slice(lineStart(at)))![0];
  const unit = fo.insertSpaces === false ? '\t' : ' '.repeat(fo.tabSize ?? 2);
  const eol = fo.eol ?? '\n';
  // An array all on one line (`"X": [ {…} ]`): the new element goes one level deeper than that line.
  const sameLine = lineStart(last.offset) === lineStart(arr.offset);
  const indent = sameLine ? indentOf(arr.offset) + unit : indentOf(last.offset);
  const body = JSON.stringify(value, null, unit).replace(/\n/g, eol + indent);
  return text.slice(0, end) + ',' + eol + indent + body + text.slice(end);
}

/**
 * Cuts one property or array element out of the text, with the comma and line
 * break that introduced it: the exact inverse of how `modify` appended it, so
 * the neighbours are left byte for byte (jsonc-parser's own removal reflows them).
 */
function removeAt(text: string, path: Array<string | number>, fo: FormattingOptions): string {
  const root = parseTree(text, [], { allowTrailingComma: true });
  const valueNode = root ? findNodeAtLocation(root, path) : undefined;
  if (!valueNode) return text;
  const node = valueNode.parent?.type === 'property' ? valueNode.parent : valueNode;
  const container = node.parent;
  const siblings = container?.children ?? [];
  const k = siblings.indexOf(node);
  if (!container || k === -1) return text;
  const end = node.offset + node.length;
  const prev = siblings[k - 1];
  const next = siblings[k + 1];
  if (prev && /^\s*,\s*$/.test(text.slice(prev.offset + prev.length, node.offset))) return text.slice(0, prev.offset + prev.length) + text.slice(end);
  if (!prev && next && /^\s*,\s*$/.test(text.slice(end, next.offset))) return text.slice(0, node.offset) + text.slice(next.offset);
  if (!prev && !next) {
    const open = container.offset + 1;
    const close = container.offset + container.length - 1;
    if (/^\s*$/.test(text.slice(open, node.offset)) && /^\s*,?\s*$/.test(text.slice(end, close))) return text.slice(0, open) + text.slice(close);
  }
  // Comments around the entry: let jsonc-parser decide.
  return applyEdits(text, modify(text, path, undefined, { formattingOptions: fo }));
}

function hooksObject(root: Node | undefined, file: string): Node | undefined {
  if (!root) return undefined;
  const hooks = findNodeAtLocation(root, ['hooks']);
  if (hooks && hooks.type !== 'object') throw new SettingsError(`${file}: "hooks" is not an object; file left untouched`, 'E_SETTINGS_SHAPE');
  return hooks;
}

export interface InstallPlan {
  text: string;
  changed: boolean;
  added: string[];
  updated: string[];
  unchanged: string[];
}

/**
 * Adds our hook to each event: a new matcher group of our own when the event has
 * none of ours, an in-place update of an older version of ours, nothing when it
 * is already there. Installing twice equals installing once.
 */
export function planInstall(original: string, spec: HookSpec, file: string): InstallPlan {
  const fo = detectFormatting(original);
  const empty = original.trim() === '';
  let text = empty ? '{}' : original;
  let root = parseSettings(text, file);
  hooksObject(root, file);
  const added: string[] = [];
  const updated: string[] = [];
  const unchanged: string[] = [];
  const want = ourEntry(spec);
  for (const event of spec.events) {
    root = parseSettings(text, file);
    const arr = root ? findNodeAtLocation(root, ['hooks', event]) : undefined;
    if (!arr) {
      text = edit(text, ['hooks', event], [groupFor(event, spec)], fo);
      added.push(event);
      continue;
    }
    if (arr.type !== 'array') throw new SettingsError(`${file}: "hooks.${event}" is not an array; file left untouched`, 'E_SETTINGS_SHAPE');
    const groups = getNodeValue(arr) as MatcherGroup[];
    const found: Array<[number, number]> = [];
    groups.forEach((g, gi) => {
      if (g && Array.isArray(g.hooks)) (g.hooks as HookEntry[]).forEach((h, hi) => h && isOurHookCommand(h.command) && found.push([gi, hi]));
    });
    if (found.length === 0) {
      text = appendElement(text, arr, groupFor(event, spec), fo) ?? edit(text, ['hooks', event, groups.length], groupFor(event, spec), fo, true);
      added.push(event);
      continue;
    }
    const [gi, hi] = found[0]!;
    const current = (groups[gi]!.hooks as HookEntry[])[hi]!;
    // Duplicates of ours (hand-copied, or two old versions) would fire twice: keep one.
    for (const [dg, dh] of found.slice(1).reverse()) text = removeHook(text, event, dg, dh, fo, file);
    if (sameEntry(current, want) && found.length === 1) {
      unchanged.push(event);
      continue;
    }
    if (!sameEntry(current, want)) text = edit(text, ['hooks', event, gi, 'hooks', hi], want, fo);
    updated.push(event);
  }
  if (empty) text = text + (original.includes('\r\n') ? '\r\n' : '\n');
  return { text, changed: text !== original, added, updated, unchanged };
}

/** Removes one hook entry, and its matcher group when that leaves the group empty. */
function removeHook(text: string, event: string, gi: number, hi: number, fo: FormattingOptions, file: string): string {
  const root = parseSettings(text, file);
  const group = root ? findNodeAtLocation(root, ['hooks', event, gi]) : undefined;
  const value = group ? (getNodeValue(group) as MatcherGroup) : undefined;
  const onlyOne = Array.isArray(value?.hooks) && (value!.hooks as unknown[]).length === 1;
  return onlyOne ? edit(text, ['hooks', event, gi], undefined, fo) : edit(text, ['hooks', event, gi, 'hooks', hi], undefined, fo);
}

export interface UninstallPlan {
  text: string;
  changed: boolean;
  removed: string[];
}

/**
 * Removes every hook entry of ours (any version) and the containers that leaves
 * empty: the matcher group, the event's array, the `hooks` object. Everything
 * else is left byte for byte.
 */
export function planUninstall(original: string, file: string): UninstallPlan {
  const fo = detectFormatting(original);
  let text = original;
  const removed: string[] = [];
  let root = parseSettings(text, file);
  const hooks = hooksObject(root, file);
  if (!hooks) return { text, changed: false, removed };
  const events = (hooks.children ?? []).map((p) => p.children?.[0]?.value as string);
  for (const event of events) {
    // Remove from the end so earlier indexes stay valid.
    for (;;) {
      root = parseSettings(text, file);
      const arr = root ? findNodeAtLocation(root, ['hooks', event]) : undefined;
      if (!arr || arr.type !== 'array') break;
      const groups = getNodeValue(arr) as MatcherGroup[];
      let hit: [number, number] | undefined;
      groups.forEach((g, gi) => {
        if (g && Array.isArray(g.hooks)) (g.hooks as HookEntry[]).forEach((h, hi) => h && isOurHookCommand(h.command) && (hit = [gi, hi]));
      });
      if (!hit) break;
      text = removeHook(text, event, hit[0], hit[1], fo, file);
      if (!removed.includes(event)) removed.push(event);
    }
    root = parseSettings(text, file);
    const arr = root ? findNodeAtLocation(root, ['hooks', event]) : undefined;
    if (removed.includes(event) && arr?.type === 'array' && (arr.children ?? []).length === 0) text = edit(text, ['hooks', event], undefined, fo);
  }
  root = parseSettings(text, file);
  const after = root ? findNodeAtLocation(root, ['hooks']) : undefined;
  if (removed.length > 0 && after?.type === 'object' && (after.children ?? []).length === 0) {
    text = edit(text, ['hooks'], undefined, fo);
  }
  return { text, changed: text !== original, removed };
}

/** Our hook entries found in a settings text, by event (for doctor). Never throws on bad files: returns an error instead. */
export function findOurHooks(text: string, file: string): { commands: Array<{ event: string; command: string; async: boolean }>; error?: string; disableAllHooks?: boolean; cleanupPeriodDays?: unknown; allowManagedHooksOnly?: boolean } {
  let root: Node | undefined;
  try {
    root = parseSettings(text, file);
  } catch (err) {
    return { commands: [], error: (err as Error).message };
  }
  const value = (root ? getNodeValue(root) : {}) as { hooks?: Record<string, MatcherGroup[]>; disableAllHooks?: unknown; cleanupPeriodDays?: unknown; allowManagedHooksOnly?: unknown };
  const commands: Array<{ event: string; command: string; async: boolean }> = [];
  if (value.hooks && typeof value.hooks === 'object') {
    for (const [event, groups] of Object.entries(value.hooks)) {
      if (!Array.isArray(groups)) continue;
      for (const g of groups) {
        if (!g || !Array.isArray(g.hooks)) continue;
        for (const h of g.hooks as HookEntry[]) if (h && isOurHookCommand(h.command)) commands.push({ event, command: h.command as string, async: h.async === true });
      }
    }
  }
  return { commands, disableAllHooks: value.disableAllHooks === true, cleanupPeriodDays: value.cleanupPeriodDays, allowManagedHooksOnly: value.allowManagedHooksOnly === true };
}
