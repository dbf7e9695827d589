/**
 * The client IP that rate limits key on (SPEC §13.1): the `x-forwarded-for` hop written by the
 * platform's own proxy, never one the client can write, reduced to one key per address (IPv4) or
 * per /64 (IPv6), so that spelling an address differently never buys a fresh budget.
 *
 * Runs on every request: it scans character codes once, with no regular expressions and no
 * splitting of the header.
 */

/** The one bucket shared by every address that cannot be parsed. */
const unknownIp = "unknown";

// Longer than any address with brackets, zone id and port a proxy writes; longer text is refused
// before it is scanned, so a client cannot make us walk a megabyte of zone id.
const maxAddressLength = 100;

// Scratch space for the eight 16-bit groups of an IPv6 address. The parsers are synchronous, so one
// array per process is enough and no request allocates its own.
const groups = new Uint16Array(8);

/** Where the client IP comes from. */
export interface ClientIpOptions {
  /**
   * How many proxies the platform puts in front of the function (`TRUSTED_PROXY_HOPS`, default 1,
   * parsed by config): each appends the address it received the request from to
   * `x-forwarded-for`, so the client IP is the hop the outermost of them added, this many hops from
   * the right. With the default 1 that is the LAST hop, the one Supabase's edge appended; a client
   * can prepend anything but cannot write that one. `0` means no proxy: the peer address is used
   * and `x-forwarded-for` is ignored.
   */
  trustedProxyHops: number;
  /** The address of the TCP peer, used when no proxy hop is present (local runs). */
  peerAddress?: string;
}

/**
 * The rate-limit key for the client that sent `req`: the `trustedProxyHops`-th hop from the right
 * of `x-forwarded-for`, normalised by {@link normaliseIp}.
 *
 * - Hops are comma-separated with spaces and tabs around them trimmed; empty hops are skipped, as
 *   RFC 9110 §5.6.1 asks of list headers.
 * - No hop at all (header absent or blank), or `trustedProxyHops` 0: `peerAddress`, else "unknown".
 * - Fewer hops than `trustedProxyHops`: the leftmost hop, the one nearest the client. The setting
 *   then overstates the proxies in front of us; answering "unknown" would put every client into
 *   one shared bucket, and the leftmost hop opens no new way to spoof: a client who prepends hops
 *   of its own makes the list long enough to reach the configured hop anyway.
 *
 * Throws a `RangeError` when `trustedProxyHops` is not a non-negative integer: config validates
 * it, so that is a programmer error.
 *
 * @example
 * const req = new Request("https://fn.test", {
 *   headers: { "x-forwarded-for": "198.51.100.9, 203.0.113.7" },
 * });
 * clientIp(req, { trustedProxyHops: 1 }); // "203.0.113.7": the client wrote 198.51.100.9
 */
export function clientIp(req: Request, options: ClientIpOptions): string {
  const { trustedProxyHops, peerAddress } = options;
  if (!Number.isInteger(trustedProxyHops) || trustedProxyHops < 0) {
    const detail = `must be a non-negative integer, got ${trustedProxyHops}`;
    throw new RangeError(`Cannot derive the client IP: trustedProxyHops ${detail}`);
  }
  const header = trustedProxyHops === 0 ? null : req.headers.get("x-forwarded-for");
  if (header !== null) {
    // Walk from the right: the hops we trust are there, and the client's part (of any length) is
    // to their left, so it is never scanned.
    let hops = 0;
    let hopStart = 0;
    let hopEnd = 0;
    let end = header.length;
    while (true) {
      const comma = end === 0 ? -1 : header.lastIndexOf(",", end - 1);
      let start = comma + 1;
      let stop = end;
      while (start < stop && isSpace(header.charCodeAt(start))) start++;
      while (stop > start && isSpace(header.charCodeAt(stop - 1))) stop--;
      if (start < stop) {
        hopStart = start;
        hopEnd = stop;
        if (++hops === trustedProxyHops) break;
      }
      if (comma < 0) break; // fewer hops than trusted proxies: keep the leftmost one
      end = comma;
    }
    if (hops > 0) return normaliseRange(header, hopStart, hopEnd);
  }
  return peerAddress === undefined ? unknownIp : normaliseIp(peerAddress);
}

/**
 * Normalises one textual address for use as a rate-limit key:
 *
 * - IPv4: a dotted quad of decimal numbers up to 255, returned as is. An octet with a leading zero
 *   (`010.1.1.1`) is unparseable: `inet_aton` reads it as octal (8) where others read decimal
 *   (10), Go, Python and Node refuse it for that reason, and no proxy writes it. Other legacy forms
 *   (`127.1`, `0x7f.0.0.1`, a bare 32-bit number) are unparseable too.
 * - IPv6: reduced to its /64 in RFC 5952 form (`2001:0DB8::1` → `2001:db8::/64`): one subscriber
 *   usually holds a whole /64, so a per-address key would hand out 2^64 budgets.
 * - IPv4-mapped IPv6 (`::ffff:1.2.3.4`, `::ffff:0102:0304`): the IPv4 address.
 * - Removed first: spaces and tabs around the text, brackets (`[2001:db8::1]`, `[::1]:443`), a
 *   zone id (`fe80::1%eth0`, non-empty) and a `:port` after an IPv4 address.
 * - Anything else, including empty text and text over 100 characters: the single shared bucket
 *   `"unknown"`.
 *
 * @example
 * normaliseIp("[2001:DB8:0:0:0:0:0:1]"); // "2001:db8::/64"
 * normaliseIp("::ffff:203.0.113.7"); // "203.0.113.7"
 * normaliseIp("203.0.113.7:443"); // "203.0.113.7"
 * normaliseIp("evil"); // "unknown"
 */
export function normaliseIp(text: string): string {
  return normaliseRange(text, 0, text.length);
}

/**
 * The full RFC 5952 text of an IPv6 address (lowercase, no leading zeros, the longest run of two
 * or more zero groups shortened to `::`, the first of equally long runs), or `null` when `text` is
 * not one. Accepts what {@link normaliseIp} accepts around an IPv6 address (brackets, a zone id,
 * `[…]:port`), drops the zone id, and writes IPv4-mapped addresses as `::ffff:1.2.3.4` (RFC 5952
 * §5). For logs and tests; rate limits use {@link normaliseIp}.
 *
 * @example
 * canonicalIpv6("2001:0DB8:0:0:1:0:0:1"); // "2001:db8::1:0:0:1"
 * canonicalIpv6("203.0.113.7"); // null
 */
export function canonicalIpv6(text: string): string | null {
  let start = 0;
  let end = text.length;
  while (start < end && isSpace(text.charCodeAt(start))) start++;
  while (end > start && isSpace(text.charCodeAt(end - 1))) end--;
  if (end - start > maxAddressLength) return null;
  if (text.charCodeAt(start) === bracketOpen) {
    end = bracketedEnd(text, start, end);
    if (end < 0) return null;
    start++;
  }
  if (!parseIpv6(text, start, end)) return null;
  if (isIpv4Mapped()) return "::ffff:" + formatIpv4(groups[6], groups[7]);
  return formatIpv6();
}

function normaliseRange(text: string, start: number, end: number): string {
  while (start < end && isSpace(text.charCodeAt(start))) start++;
  while (end > start && isSpace(text.charCodeAt(end - 1))) end--;
  if (start === end || end - start > maxAddressLength) return unknownIp;

  if (text.charCodeAt(start) === bracketOpen) {
    const close = bracketedEnd(text, start, end);
    return close < 0 ? unknownIp : normaliseIpv6(text, start + 1, close);
  }
  const firstColon = text.indexOf(":", start);
  if (firstColon < 0 || firstColon >= end) {
    if (parseIpv4(text, start, end) < 0) return unknownIp;
    // Accepted text is already canonical (decimal, no leading zeros): no need to build a copy.
    return start === 0 && end === text.length ? text : text.slice(start, end);
  }
  const secondColon = text.indexOf(":", firstColon + 1);
  if (secondColon < 0 || secondColon >= end) {
    // One colon: IPv4 with a port (every IPv6 text has at least two).
    if (parseIpv4(text, start, firstColon) < 0 || !isPort(text, firstColon + 1, end)) {
      return unknownIp;
    }
    return text.slice(start, firstColon);
  }
  return normaliseIpv6(text, start, end);
}

function normaliseIpv6(text: string, start: number, end: number): string {
  if (!parseIpv6(text, start, end)) return unknownIp;
  if (isIpv4Mapped()) return formatIpv4(groups[6], groups[7]);
  groups[4] =
    groups[5] =
    groups[6] =
    groups[7] =
      0;
  return formatIpv6() + "/64";
}

const bracketOpen = 0x5b; // [
const colon = 0x3a;
const dot = 0x2e;
const digit0 = 0x30;
const digit9 = 0x39;

function isSpace(code: number): boolean {
  return code === 0x20 || code === 0x09;
}

/**
 * For `[address]` or `[address]:port` spanning `start`–`end` (with `[` at `start`): the index of
 * `]`, or -1 when the text has another shape.
 */
function bracketedEnd(text: string, start: number, end: number): number {
  const close = text.indexOf("]", start + 1);
  if (close < 0 || close >= end) return -1;
  if (close + 1 === end) return close;
  return text.charCodeAt(close + 1) === colon && isPort(text, close + 2, end) ? close : -1;
}

/** Whether `start`–`end` is a decimal port number, 0 to 65535. */
function isPort(text: string, start: number, end: number): boolean {
  if (start === end || end - start > 5) return false;
  let value = 0;
  for (let i = start; i < end; i++) {
    const code = text.charCodeAt(i);
    if (code < digit0 || code > digit9) return false;
    value = value * 10 + code - digit0;
  }
  return value <= 65535;
}

/** The IPv4 address spanning exactly `start`–`end` as a 32-bit number, or -1 when it is not one. */
function parseIpv4(text: string, start: number, end: number): number {
  let value = 0;
  let octets = 0;
  let i = start;
  while (true) {
    const octetStart = i;
    let octet = 0;
    while (i < end && i - octetStart < 4) {
      const code = text.charCodeAt(i);
      if (code < digit0 || code > digit9) break;
      octet = octet * 10 + code - digit0;
      i++;
    }
    const digits = i - octetStart;
    if (digits === 0 || digits > 3 || octet > 255) return -1;
    if (digits > 1 && text.charCodeAt(octetStart) === digit0) return -1; // octal or decimal?
    value = value * 256 + octet;
    octets++;
    if (i === end) return octets === 4 ? value : -1;
    if (octets === 4 || text.charCodeAt(i) !== dot) return -1;
    i++;
  }
}

function hexValue(code: number): number {
  if (code >= digit0 && code <= digit9) return code - digit0;
  const lower = code | 0x20; // ASCII letters only differ by this bit
  if (lower >= 0x61 && lower <= 0x66) return lower - 0x61 + 10;
  return -1;
}

/**
 * Parses the IPv6 address spanning `start`–`end` (an optional non-empty `%zone` at the end) into
 * `groups`. Returns false when it is not one.
 */
function parseIpv6(text: string, start: number, end: number): boolean {
  const zone = text.indexOf("%", start);
  if (zone >= 0 && zone < end) {
    if (!isZoneId(text, zone + 1, end)) return false;
    end = zone;
  }
  if (end - start < 2) return false;

  let count = 0;
  let gap = -1; // index in groups where "::" stands
  let i = start;
  if (text.charCodeAt(i) === colon) {
    if (text.charCodeAt(i + 1) !== colon) return false;
    gap = 0;
    i += 2;
  }
  while (i < end) {
    const groupStart = i;
    let value = 0;
    while (i < end && i - groupStart < 5) {
      const digit = hexValue(text.charCodeAt(i));
      if (digit < 0) break;
      value = value * 16 + digit;
      i++;
    }
    if (i < end && text.charCodeAt(i) === dot) {
      // An embedded IPv4 address takes the last two groups.
      if (count > 6) return false;
      const ipv4 = parseIpv4(text, groupStart, end);
      if (ipv4 < 0) return false;
      groups[count++] = ipv4 >>> 16;
      groups[count++] = ipv4 & 0xffff;
      i = end;
      break;
    }
    const digits = i - groupStart;
    if (digits === 0 || digits > 4 || count === 8) return false;
    groups[count++] = value;
    if (i === end) break;
    if (text.charCodeAt(i) !== colon) return false;
    i++;
    if (i < end && text.charCodeAt(i) === colon) {
      if (gap >= 0) return false; // a second "::"
      gap = count;
      i++;
    } else if (i === end) {
      return false; // a trailing single ":"
    }
  }

  if (gap < 0) return count === 8;
  if (count > 7) return false; // "::" stands for at least one group
  const moved = count - gap;
  for (let k = 1; k <= moved; k++) groups[8 - k] = groups[count - k];
  for (let k = gap; k < 8 - moved; k++) groups[k] = 0;
  return true;
}

/**
 * Whether `start`–`end` is a zone id: non-empty, of RFC 3986 unreserved characters (RFC 6874; the
 * URL form `%25eth0` passes as `25eth0`, and is dropped all the same).
 */
function isZoneId(text: string, start: number, end: number): boolean {
  if (start === end) return false;
  for (let i = start; i < end; i++) {
    const code = text.charCodeAt(i);
    const lower = code | 0x20;
    const unreserved = (code >= digit0 && code <= digit9) || (lower >= 0x61 && lower <= 0x7a) ||
      code === 0x2d || code === dot || code === 0x5f || code === 0x7e; // - . _ ~
    if (!unreserved) return false;
  }
  return true;
}

function isIpv4Mapped(): boolean {
  return groups[0] === 0 && groups[1] === 0 && groups[2] === 0 && groups[3] === 0 &&
    groups[4] === 0 && groups[5] === 0xffff;
}

function formatIpv4(high: number, low: number): string {
  return (high >>> 8) + "." + (high & 0xff) + "." + (low >>> 8) + "." + (low & 0xff);
}

/** `groups` in RFC 5952 form. */
function formatIpv6(): string {
  let bestStart = -1;
  let bestLength = 1; // a single zero group is never shortened
  let runStart = -1;
  for (let k = 0; k <= 8; k++) {
    if (k < 8 && groups[k] === 0) {
      if (runStart < 0) runStart = k;
    } else if (runStart >= 0) {
      // Strictly longer only: the first of equally long runs wins.
      if (k - runStart > bestLength) {
        bestStart = runStart;
        bestLength = k - runStart;
      }
      runStart = -1;
    }
  }
  let out = "";
  for (let k = 0; k < 8; k++) {
    if (k === bestStart) {
      out += "::";
      k += bestLength - 1;
    } else {
      // A separator goes between two groups, not after the opening or the "::".
      if (k > 0 && k !== bestStart + bestLength) out += ":";
      out += groups[k].toString(16);
    }
  }
  return out;
}
