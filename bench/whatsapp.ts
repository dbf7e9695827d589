/**
 * whatsapp-webhook deliveries through the local server against a baseline server, in the same
 * process, that does only what no webhook receiver can skip: read the body, check Meta's
 * signature, answer 200. Each delivery is a signed batch of 10 text messages with fresh wamids,
 * so every request really stores 10 rows. The ratio is what parsing, the store call and the
 * shared handler conventions cost on top.
 */
import { startLocalServer } from "../local/server.ts";
import type { Sql } from "../supabase/functions/_shared/db.ts";
import { verifyMetaSignature } from "../supabase/functions/_shared/signatures.ts";
import type { CpuMeter } from "./cpu.ts";
import { type BenchResult, compareRates, fetchOk } from "./harness.ts";

const messagesPerDelivery = 10;
const concurrency = 8;
const encoder = new TextEncoder();

export async function benchWhatsappDeliveries(
  options: { sql: Sql; env: Record<string, string>; cpu?: CpuMeter },
): Promise<BenchResult> {
  const { sql } = options;
  const appSecret = options.env.WHATSAPP_APP_SECRET ?? "bench-whatsapp-app-secret";
  const env = {
    WHATSAPP_VERIFY_TOKEN: "bench-whatsapp-verify-token",
    ...options.env,
    WHATSAPP_APP_SECRET: appSecret,
  };
  const key = await crypto.subtle.importKey(
    "raw",
    encoder.encode(appSecret),
    { name: "HMAC", hash: "SHA-256" },
    false,
    ["sign"],
  );
  const run = crypto.randomUUID().slice(0, 8);
  let sequence = 0;

  /** A signed 10-message delivery whose wamids no other request uses. */
  async function signedDelivery(): Promise<RequestInit> {
    const body = encoder.encode(JSON.stringify(deliveryOf(run, sequence++)));
    const mac = new Uint8Array(await crypto.subtle.sign("HMAC", key, body));
    const hex = Array.from(mac, (b) => b.toString(16).padStart(2, "0")).join("");
    return {
      method: "POST",
      headers: { "content-type": "application/json", "x-hub-signature-256": `sha256=${hex}` },
      body,
    };
  }

  const baseline = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    async (req) => {
      const body = new Uint8Array(await req.arrayBuffer());
      const signature = req.headers.get("x-hub-signature-256");
      if (!await verifyMetaSignature(body, signature, appSecret)) {
        return new Response(null, { status: 401 });
      }
      return new Response(null, { status: 200 });
    },
  );
  const server = await startLocalServer({ env, sql });
  try {
    const baselineUrl = `http://127.0.0.1:${baseline.addr.port}/`;
    const url = `${server.functionsUrl}/whatsapp-webhook`;
    let delivered = 0;
    const { rate, baselineRate, cpu } = await compareRates(
      async () => {
        await fetchOk(url, await signedDelivery());
        delivered++;
      },
      async () => await fetchOk(baselineUrl, await signedDelivery()),
      { concurrency, cpu: options.cpu },
    );
    // Every delivery must really have stored its rows, or the figure means nothing.
    const [{ stored }] = await sql`
      select count(*)::int as stored from whatsapp.message where wamid like ${`wamid.bench-${run}-%`}`;
    const expected = delivered * messagesPerDelivery;
    if (stored !== expected) throw new Error(`stored ${stored} messages, expected ${expected}`);
    return {
      name: "whatsapp-webhook",
      rate,
      baselineRate,
      cpu,
      // Measured 0.16–0.24 on 2 cores shared with Postgres: the baseline stores nothing, and 10
      // rows committed per delivery (synchronous_commit on: a 200 promises they are durable)
      // dominate the cost.
      target: 0.15,
      unit: `deliveries/s (${messagesPerDelivery} messages each)`,
      baseline: "server that only reads the body, checks the signature and answers 200",
    };
  } finally {
    await server.close();
    await baseline.shutdown();
  }
}

/** A WhatsApp Cloud API delivery of 10 text messages from 10 senders. */
function deliveryOf(run: string, sequence: number) {
  const senders = Array.from(
    { length: messagesPerDelivery },
    (_, i) => `1555${sequence % 1000}${i}`,
  );
  return {
    object: "whatsapp_business_account",
    entry: [{
      id: "102290129340398",
      changes: [{
        field: "messages",
        value: {
          messaging_product: "whatsapp",
          metadata: { display_phone_number: "15550783881", phone_number_id: "106540352242922" },
          contacts: senders.map((waId, i) => ({ profile: { name: `Sender ${i}` }, wa_id: waId })),
          messages: senders.map((waId, i) => ({
            from: waId,
            id: `wamid.bench-${run}-${sequence}-${i}`,
            timestamp: String(1749416383 + sequence),
            type: "text",
            text: { body: `Message ${i} of delivery ${sequence}` },
          })),
        },
      }],
    }],
  };
}
