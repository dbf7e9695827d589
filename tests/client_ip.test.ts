import assert from "node:assert/strict";
import { canonicalIpv6, clientIp, normaliseIp } from "../supabase/functions/_shared/client_ip.ts";

/** A request as Supabase's edge hands it on: `forwardedFor` is the whole x-forwarded-for value. */
function requestFrom(forwardedFor?: string | string[]): Request {
  const headers = new Headers();
  for (const value of [forwardedFor ?? []].flat()) headers.append("x-forwarded-for", value);
  return new Request("https://functions.test/otp-send", { method: "POST", headers });
}

const defaults = { trustedProxyHops: 1 };

Deno.test("normaliseIp() gives every spelling of one IPv6 address, and its /64, one key", () => {
  const spellings = [
    "2001:db8:0:0:0:0:0:1",
    "2001:0db8::0001",
    "[2001:db8::1]",
    "2001:db8::2",
    "2001:DB8::1",
    "[2001:db8::1]:443",
    "2001:db8::1%eth0",
    "[2001:db8::1%25eth0]:8080",
    " 2001:db8::1\t",
    "2001:db8::ffff:ffff:ffff:ffff",
    "2001:db8:0:0:1:2:192.0.2.1",
  ];
  for (const spelling of spellings) {
    assert.equal(normaliseIp(spelling), "2001:db8::/64", spelling);
  }
});

Deno.test("normaliseIp() keeps different /64s apart", () => {
  assert.equal(normaliseIp("2001:db8:0:1::1"), "2001:db8:0:1::/64");
  assert.equal(normaliseIp("2001:DB8:AAAA:BBBB:1::"), "2001:db8:aaaa:bbbb::/64");
  assert.equal(normaliseIp("2001:0:0:1:abcd::1"), "2001:0:0:1::/64");
  assert.equal(normaliseIp("fe80::1%eth0"), "fe80::/64");
  assert.equal(normaliseIp("::1"), "::/64");
  assert.equal(normaliseIp("::"), "::/64");
});

Deno.test("normaliseIp() keys an IPv4-mapped IPv6 address as the IPv4 address", () => {
  const spellings = [
    "203.0.113.7",
    "::ffff:203.0.113.7",
    "::FFFF:203.0.113.7",
    "::ffff:cb00:7107",
    "0:0:0:0:0:ffff:203.0.113.7",
    "[::ffff:203.0.113.7]",
    "[::ffff:203.0.113.7]:443",
    "203.0.113.7:443",
  ];
  for (const spelling of spellings) {
    assert.equal(normaliseIp(spelling), "203.0.113.7", spelling);
  }
  assert.equal(normaliseIp("::ffff:0102:0304"), "1.2.3.4");
  assert.equal(normaliseIp("::ffff:0.0.0.0"), "0.0.0.0");
});

Deno.test("normaliseIp() returns an IPv4 address as it is, without port or spaces", () => {
  assert.equal(normaliseIp("0.0.0.0"), "0.0.0.0");
  assert.equal(normaliseIp("255.255.255.255"), "255.255.255.255");
  assert.equal(normaliseIp("10.0.0.1:65535"), "10.0.0.1");
  assert.equal(normaliseIp(" 10.0.0.1 "), "10.0.0.1");
});

Deno.test("normaliseIp() puts unparseable text into the one shared bucket", () => {
  const garbage = [
    "evil",
    "1.2.3.4.5",
    "256.1.1.1",
    "::ffff:999.1.1.1",
    "",
    " ",
    "1".repeat(1000),
    "2001:db8::1".padEnd(1000, "1"),
    `fe80::1%${"a".repeat(200)}`,
    // IPv4 spellings some parsers accept and others read differently
    "010.1.1.1",
    "01.1.1.1",
    "0x7f.0.0.1",
    "127.1",
    "2130706433",
    "1e2.1.1.1",
    "+1.2.3.4",
    "1.2.3.-4",
    "１.２.３.４",
    "١.٢.٣.٤",
    // truncated or padded IPv4
    "1.2.3",
    "1.2.3.",
    ".1.2.3.4",
    "1..2.3",
    "1.2.3.4\u0000",
    "1.2.3.4\n",
    "1.2.3.4, 5.6.7.8",
    // ports
    "1.2.3.4:",
    "1.2.3.4:65536",
    "1.2.3.4:123456",
    "1.2.3.4:x",
    "[::1]:",
    "[::1]:99999",
    // brackets
    "[1.2.3.4]",
    "[1.2.3.4]:80",
    "[2001:db8::1",
    "2001:db8::1]",
    "[2001:db8::1]x",
    "[]",
    // IPv6 shapes
    "1:2:3:4:5:6:7:8:9",
    "1:2:3:4:5:6:7",
    "1:2:3:4:5:6:7:8::",
    "1::2::3",
    ":::",
    ":",
    "::1:",
    ":1::",
    "12345::",
    "g::1",
    "1:2:3:4:5:6:7:1.2.3.4",
    "::ffff:1.2.3.4.5",
    "::ffff:1.2.3",
    "::1.2.3.4:5",
    // zone ids
    "fe80::1%",
    "%eth0",
    "fe80::1%eth 0",
    "fe80::1%eth0%1",
    "fe80::1%eth0:80",
  ];
  for (const text of garbage) {
    assert.equal(normaliseIp(text), "unknown", JSON.stringify(text.slice(0, 40)));
  }
});

Deno.test("canonicalIpv6() writes RFC 5952 text", () => {
  const cases: [string, string][] = [
    // §4.3 lowercase, §4.1 no leading zeros
    ["2001:0DB8:00A0:0000:0000:0000:0000:0001", "2001:db8:a0::1"],
    // §4.2.3 the longest run of zero groups is shortened
    ["2001:db8:0:0:1:0:0:0", "2001:db8:0:0:1::"],
    ["0:0:0:1:2:0:0:0", "::1:2:0:0:0"],
    // §4.2.3 the first of equally long runs
    ["2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1"],
    ["1:0:0:2:3:0:0:4", "1::2:3:0:0:4"],
    // §4.2.2 a single zero group is not shortened
    ["2001:db8:0:1:1:1:1:1", "2001:db8:0:1:1:1:1:1"],
    ["2001:db8::1:1:1:1:1", "2001:db8:0:1:1:1:1:1"],
    // §4.2.1 shortened as far as possible
    ["2001:db8:0:0:0:0:2:1", "2001:db8::2:1"],
    ["0:0:0:0:0:0:0:0", "::"],
    ["0:0:0:0:0:0:0:1", "::1"],
    ["1:0:0:0:0:0:0:0", "1::"],
    ["1:2:3:4:5:6:7::", "1:2:3:4:5:6:7:0"],
    // §5 IPv4-mapped addresses in mixed notation; other embedded IPv4 in hex
    ["::ffff:0102:0304", "::ffff:1.2.3.4"],
    ["64:ff9b::192.0.2.33", "64:ff9b::c000:221"],
    // the zone id, brackets and port are not part of the address
    ["[fe80::1%25eth0]:443", "fe80::1"],
  ];
  for (const [text, canonical] of cases) {
    assert.equal(canonicalIpv6(text), canonical, text);
  }
  assert.equal(canonicalIpv6("203.0.113.7"), null);
  assert.equal(canonicalIpv6("1::2::3"), null);
  assert.equal(canonicalIpv6("evil"), null);
});

Deno.test("clientIp() keys on the last x-forwarded-for hop by default", () => {
  const req = requestFrom("198.51.100.9, 203.0.113.7");
  assert.equal(clientIp(req, defaults), "203.0.113.7");
});

Deno.test("clientIp() is not changed by rotating the hops a client can write", () => {
  const clientWritten = [
    "",
    "198.51.100.1",
    "198.51.100.2",
    "2001:db8:1::1",
    "unknown",
    "evil, 10.0.0.1, 10.0.0.2",
    "203.0.113.8",
    `${"1.1.1.1, ".repeat(10_000)}1.1.1.1`,
  ];
  for (const prefix of clientWritten) {
    const req = requestFrom(prefix ? `${prefix}, 203.0.113.7` : "203.0.113.7");
    assert.equal(clientIp(req, defaults), "203.0.113.7", prefix.slice(0, 40));
  }
  for (const prefix of clientWritten) {
    const req = requestFrom(prefix ? `${prefix},2001:db8::1` : "2001:db8::1");
    assert.equal(clientIp(req, defaults), "2001:db8::/64", prefix.slice(0, 40));
  }
});

Deno.test("clientIp() counts trusted proxy hops from the right", () => {
  const req = requestFrom("192.0.2.1, 192.0.2.2, 192.0.2.3");
  assert.equal(clientIp(req, { trustedProxyHops: 1 }), "192.0.2.3");
  assert.equal(clientIp(req, { trustedProxyHops: 2 }), "192.0.2.2");
  assert.equal(clientIp(req, { trustedProxyHops: 3 }), "192.0.2.1");
});

Deno.test("clientIp() takes the leftmost hop when there are fewer than trusted", () => {
  const req = requestFrom("192.0.2.2, 192.0.2.3");
  assert.equal(clientIp(req, { trustedProxyHops: 3, peerAddress: "10.0.0.1" }), "192.0.2.2");
  assert.equal(clientIp(requestFrom("192.0.2.3"), { trustedProxyHops: 2 }), "192.0.2.3");
});

Deno.test("clientIp() skips empty hops and trims spaces and tabs", () => {
  const req = requestFrom(" , 192.0.2.1 ,,\t192.0.2.2\t, ");
  assert.equal(clientIp(req, { trustedProxyHops: 1 }), "192.0.2.2");
  assert.equal(clientIp(req, { trustedProxyHops: 2 }), "192.0.2.1");
});

Deno.test("clientIp() reads several x-forwarded-for lines as one list, in order", () => {
  const req = requestFrom(["192.0.2.1, 192.0.2.2", "192.0.2.3"]);
  assert.equal(clientIp(req, { trustedProxyHops: 1 }), "192.0.2.3");
  assert.equal(clientIp(req, { trustedProxyHops: 2 }), "192.0.2.2");
});

Deno.test("clientIp() answers unknown for an unparseable trusted hop, never another hop", () => {
  assert.equal(clientIp(requestFrom("192.0.2.1, evil"), defaults), "unknown");
  assert.equal(clientIp(requestFrom("192.0.2.1, 256.0.0.1"), defaults), "unknown");
});

Deno.test("clientIp() normalises the trusted hop", () => {
  assert.equal(clientIp(requestFrom("evil, [2001:0DB8::1]:443"), defaults), "2001:db8::/64");
  assert.equal(clientIp(requestFrom("evil, ::ffff:203.0.113.7"), defaults), "203.0.113.7");
  assert.equal(clientIp(requestFrom("evil, 203.0.113.7:5000"), defaults), "203.0.113.7");
});

Deno.test("clientIp() uses the peer address when no proxy hop is present", () => {
  const peer = { ...defaults, peerAddress: "::1" };
  assert.equal(clientIp(requestFrom(), peer), "::/64");
  assert.equal(clientIp(requestFrom(" , "), peer), "::/64");
  assert.equal(clientIp(requestFrom(), { ...defaults, peerAddress: "127.0.0.1" }), "127.0.0.1");
  assert.equal(clientIp(requestFrom(), { ...defaults, peerAddress: "evil" }), "unknown");
  assert.equal(clientIp(requestFrom(), defaults), "unknown");
});

Deno.test("clientIp() ignores x-forwarded-for when no proxy is trusted", () => {
  const req = requestFrom("192.0.2.1");
  assert.equal(clientIp(req, { trustedProxyHops: 0, peerAddress: "127.0.0.1" }), "127.0.0.1");
  assert.equal(clientIp(req, { trustedProxyHops: 0 }), "unknown");
});

Deno.test("clientIp() throws on a trustedProxyHops that is not a non-negative integer", () => {
  for (const trustedProxyHops of [-1, 1.5, Number.NaN, Number.POSITIVE_INFINITY]) {
    assert.throws(
      () => clientIp(requestFrom("192.0.2.1"), { trustedProxyHops }),
      RangeError,
      String(trustedProxyHops),
    );
  }
});
