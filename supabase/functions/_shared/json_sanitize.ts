/**
 * Untrusted JSON made storable (SPEC §13.5, no poison deliveries). A webhook body that parses as
 * JSON can still hold what Postgres or a later step refuses: lone UTF-16 surrogates (`"\ud83d"`,
 * which jsonb rejects), U+0000 (which neither text nor jsonb can hold), numbers JSON.parse could
 * only read as ±Infinity (`1e400`), strings of megabytes, or nesting thousands of levels deep (which
 * would exhaust the stack of a recursive walk). Refusing such a delivery with a 5xx would have the
 * sender retry it for days and lose the valid content next to it, so the webhooks store a cleaned
 * copy instead:
 *
 * - every string and object key becomes well-formed: a lone surrogate and U+0000 become U+FFFD;
 * - a string longer than {@link defaultJsonLimits} `maxStringLength` (4096 characters, WhatsApp's
 *   own limit for a text message) is cut there, a key at `maxKeyLength` (256), never inside a
 *   surrogate pair;
 * - a number JSON could not hold (±Infinity) is dropped: its key is left out of its object, and
 *   in an array it becomes `null` so the other items keep their positions;
 * - a value nested deeper than `maxDepth` (64 levels; Meta's deliveries nest about a dozen) becomes
 *   `null`.
 *
 * The result is plain JSON that Postgres accepts as text and jsonb, and the walk is bounded by
 * `maxDepth`, so no input can overflow the stack.
 */

/** The bounds of {@link sanitizeJson}. */
export interface JsonLimits {
  /** Longest string kept, in characters (code points); longer ones are cut. */
  maxStringLength: number;
  /** Longest object key kept, in characters; longer ones are cut. */
  maxKeyLength: number;
  /** Deepest nesting kept; the root is depth 0, and anything deeper becomes `null`. */
  maxDepth: number;
}

export const defaultJsonLimits: Readonly<JsonLimits> = {
  maxStringLength: 4096,
  maxKeyLength: 256,
  maxDepth: 64,
};

/** What {@link sanitizeJson} changed, counted (for a log line; never the content itself). */
export interface JsonFixes {
  /** Strings and keys in which a lone surrogate or U+0000 became U+FFFD. */
  replaced_characters: number;
  /** Strings and keys cut to their limit. */
  cut_strings: number;
  /** Numbers dropped because JSON.parse could only read them as ±Infinity. */
  dropped_numbers: number;
  /** Values below `maxDepth` replaced by null. */
  cut_nesting: number;
}

/** A JSON value as JSON.parse returns it. */
export type JsonValue = null | boolean | number | string | JsonValue[] | {
  [key: string]: JsonValue;
};

/**
 * A cleaned copy of a parsed JSON value (see the module comment), and what was changed.
 *
 * @example
 * const { value, fixes } = sanitizeJson(JSON.parse('{"name":"\\ud83d","at":1e400}'));
 * // value: { name: "\ufffd" }; fixes.replaced_characters: 1, fixes.dropped_numbers: 1
 */
export function sanitizeJson(
  value: unknown,
  limits: JsonLimits = defaultJsonLimits,
): { value: JsonValue; fixes: JsonFixes } {
  const fixes: JsonFixes = {
    replaced_characters: 0,
    cut_strings: 0,
    dropped_numbers: 0,
    cut_nesting: 0,
  };

  const text = (input: string, maxLength: number): string => {
    const wellFormed = storableText(input);
    if (wellFormed !== input) fixes.replaced_characters++;
    const cut = cutText(wellFormed, maxLength);
    if (cut !== wellFormed) fixes.cut_strings++;
    return cut;
  };

  // Recursion is bounded by maxDepth: below it, containers are not entered.
  const walk = (input: unknown, depth: number): JsonValue | undefined => {
    switch (typeof input) {
      case "string":
        return text(input, limits.maxStringLength);
      case "number":
        if (Number.isFinite(input)) return input;
        fixes.dropped_numbers++;
        return undefined;
      case "boolean":
        return input;
      case "object": {
        if (input === null) return null;
        if (depth >= limits.maxDepth) {
          fixes.cut_nesting++;
          return null;
        }
        if (Array.isArray(input)) {
          return input.map((item) => walk(item, depth + 1) ?? null);
        }
        const entries: [string, JsonValue][] = [];
        for (const [key, item] of Object.entries(input)) {
          const cleaned = walk(item, depth + 1);
          if (cleaned !== undefined) entries.push([text(key, limits.maxKeyLength), cleaned]);
        }
        // fromEntries defines properties: a `__proto__` key stays a key, never a prototype.
        return Object.fromEntries(entries);
      }
      default:
        // Not JSON (undefined, functions, bigints): nothing JSON.parse returns.
        return undefined;
    }
  };

  return { value: walk(value, 0) ?? null, fixes };
}

/** Whether {@link sanitizeJson} changed anything. */
export function hasFixes(fixes: JsonFixes): boolean {
  return Object.values(fixes).some((count) => count > 0);
}

/**
 * `text` with every lone surrogate and U+0000 replaced by U+FFFD: what Postgres can store as text
 * and as jsonb.
 */
export function storableText(text: string): string {
  const wellFormed = text.toWellFormed();
  return wellFormed.includes("\0") ? wellFormed.replaceAll("\0", "\ufffd") : wellFormed;
}

/**
 * The first `maxLength` characters (code points, as Postgres counts them) of `text`, never ending
 * inside a surrogate pair.
 *
 * @example
 * cutText("a😀b", 2); // "a😀"
 */
export function cutText(text: string, maxLength: number): string {
  // A string of at most maxLength UTF-16 units has at most maxLength code points.
  if (text.length <= maxLength) return text;
  let units = 0;
  for (let characters = 0; characters < maxLength && units < text.length; characters++) {
    const unit = text.charCodeAt(units);
    const next = text.charCodeAt(units + 1); // NaN past the end
    const pair = unit >= 0xd800 && unit <= 0xdbff && next >= 0xdc00 && next <= 0xdfff;
    units += pair ? 2 : 1;
  }
  return text.slice(0, units);
}
