import assert from "node:assert/strict";

/** The npm packages a function's module graph loads, as `deno info` resolves them. */
async function npmPackagesOf(functionName: string): Promise<string[]> {
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["info", "--json", `./supabase/functions/${functionName}/index.ts`],
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(output.code, 0, new TextDecoder().decode(output.stderr));
  const graph = JSON.parse(new TextDecoder().decode(output.stdout)) as {
    modules: { specifier: string }[];
  };
  return graph.modules.map((m) => m.specifier).filter((s) => s.startsWith("npm:"))
    .map((s) => s.replace(/^npm:\/?/, "").replace(/@[^@/]+$/, ""));
}

Deno.test("otp-send and otp-verify never load the WorkOS SDK", async () => {
  for (const name of ["otp-send", "otp-verify"]) {
    const packages = await npmPackagesOf(name);
    assert.ok(packages.includes("stytch"), `${name} loads ${packages}`);
    assert.ok(!packages.includes("@workos-inc/node"), `${name} loads ${packages}`);
  }
});

Deno.test("functions without a provider load neither SDK", async () => {
  for (const name of ["me", "refresh", "whatsapp-webhook", "signup-webhook"]) {
    const packages = await npmPackagesOf(name);
    assert.ok(!packages.includes("stytch"), `${name} loads ${packages}`);
    assert.ok(!packages.includes("@workos-inc/node"), `${name} loads ${packages}`);
  }
});

Deno.test("workos-login and workos-callback never load the Stytch SDK", async () => {
  for (const name of ["workos-login", "workos-callback"]) {
    const packages = await npmPackagesOf(name);
    assert.ok(packages.includes("@workos-inc/node"), `${name} loads ${packages}`);
    assert.ok(!packages.includes("stytch"), `${name} loads ${packages}`);
  }
});
