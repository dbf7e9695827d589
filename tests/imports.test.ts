import assert from "node:assert/strict";

interface ModuleGraph {
  roots: string[];
  modules: {
    specifier: string;
    dependencies?: { specifier: string; isDynamic?: boolean; code?: { specifier: string } }[];
  }[];
  redirects: Record<string, string>;
}

/**
 * The npm packages a function loads when it starts (`static`: reachable from its index.ts through
 * static imports) and those it may load later, on a request that needs them (`dynamic`).
 */
async function npmPackagesOf(functionName: string): Promise<{ static: string[]; all: string[] }> {
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["info", "--json", `./supabase/functions/${functionName}/index.ts`],
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(output.code, 0, new TextDecoder().decode(output.stderr));
  const graph = JSON.parse(new TextDecoder().decode(output.stdout)) as ModuleGraph;
  const bySpecifier = new Map(graph.modules.map((m) => [m.specifier, m]));
  const resolve = (specifier: string) => graph.redirects[specifier] ?? specifier;
  const reach = (followDynamic: boolean) => {
    const seen = new Set<string>();
    const queue = graph.roots.map(resolve);
    while (queue.length) {
      const specifier = queue.pop()!;
      if (seen.has(specifier)) continue;
      seen.add(specifier);
      for (const dependency of bySpecifier.get(specifier)?.dependencies ?? []) {
        if (dependency.isDynamic && !followDynamic) continue;
        if (dependency.code) queue.push(resolve(dependency.code.specifier));
      }
    }
    return [...seen].filter((s) => s.startsWith("npm:"))
      .map((s) => s.replace(/^npm:\/?/, "").replace(/^(@?[^@/]+(?:\/[^@/]+)?)@.*$/, "$1"));
  };
  return { static: reach(false), all: reach(true) };
}

Deno.test("otp-send and otp-verify load the Stytch SDK when needed and never the WorkOS SDK at start", async () => {
  for (const name of ["otp-send", "otp-verify"]) {
    const packages = await npmPackagesOf(name);
    assert.ok(packages.all.includes("stytch"), `${name} loads ${packages.all}`);
    assert.ok(!packages.static.includes("@workos-inc/node"), `${name} loads ${packages.static}`);
  }
});

Deno.test("no function loads a provider SDK at start", async () => {
  for (const name of ["me", "refresh", "whatsapp-webhook", "signup-webhook", "otp-send"]) {
    const packages = await npmPackagesOf(name);
    assert.ok(!packages.static.includes("stytch"), `${name} loads ${packages.static}`);
    assert.ok(!packages.static.includes("@workos-inc/node"), `${name} loads ${packages.static}`);
  }
});

Deno.test("workos-login and workos-callback load the WorkOS SDK when needed and never Stytch's at start", async () => {
  for (const name of ["workos-login", "workos-callback"]) {
    const packages = await npmPackagesOf(name);
    assert.ok(packages.all.includes("@workos-inc/node"), `${name} loads ${packages.all}`);
    assert.ok(!packages.static.includes("stytch"), `${name} loads ${packages.static}`);
  }
});

Deno.test("no function loads zod, postgres.js or jose at start: a cold start pays for none", async () => {
  for await (const entry of Deno.readDir("./supabase/functions")) {
    if (!entry.isDirectory || entry.name.startsWith("_")) continue;
    const packages = await npmPackagesOf(entry.name);
    for (const heavy of ["zod", "postgres", "jose", "stytch", "@workos-inc/node"]) {
      assert.ok(!packages.static.includes(heavy), `${entry.name} loads ${heavy} at start`);
    }
  }
});
