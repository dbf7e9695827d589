/**
 * Run by tests/workos_callback.test.ts in a child process with LOG_LEVEL=info (the logger reads
 * the level once, at start): signs in through workos-login and workos-callback, replays the state,
 * and has a code refused, then prints `SECRETS <json>` with every value that must not reach a log.
 */
import { testSql, uniqueEmail } from "./db.ts";
import { call } from "./http.ts";
import { fragmentOf, withWorkos } from "./workos.ts";

const secrets: string[] = [];
await withWorkos(async ({ callback, authorizeUrl, approve }) => {
  const email = uniqueEmail("logged");
  const path = await approve(await authorizeUrl("/dash?x=1"), { email });
  const query = new URLSearchParams(path.split("?")[1]);
  const location = (await call(callback, path)).headers.get("location")!;
  const { params } = fragmentOf(location);
  await call(callback, path); // replayed: 400 INVALID_STATE

  const refusedCode = `refused-${crypto.randomUUID()}`;
  const second = new URLSearchParams(
    (await approve(await authorizeUrl("/dash"), { email })).split("?")[1],
  );
  const errorLocation = (await call(
    callback,
    `workos-callback?${new URLSearchParams({ code: refusedCode, state: second.get("state")! })}`,
  )).headers.get("location")!;

  secrets.push(
    query.get("code")!,
    query.get("state")!,
    second.get("state")!,
    refusedCode,
    email,
    email.split("@")[0],
    params.access_token,
    params.refresh_token,
    location.split("#")[1],
    errorLocation.split("#")[1],
  );
});
await testSql().end();
console.log(`SECRETS ${JSON.stringify(secrets)}`);
