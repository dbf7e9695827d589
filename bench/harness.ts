/**
 * Benchmark harness: every figure is a ratio against a baseline measured in the same run, on the
 * same machine, so the numbers mean something on any hardware. The two are measured in alternating
 * short rounds and each rate is the median of its rounds, so a machine that speeds up or slows
 * down during the run (a shared VM) affects both alike.
 */

export interface BenchResult {
  name: string;
  /** Operations per second of the thing measured (median of its rounds). */
  rate: number;
  /** Operations per second of the baseline, measured in the same rounds. */
  baselineRate: number;
  /** The ratio we promise (rate / baselineRate at least this). */
  target: number;
  unit: string;
  baseline: string;
}

export interface CompareOptions {
  rounds?: number;
  roundMs?: number;
  warmupMs?: number;
  /** Operations in flight at once. */
  concurrency?: number;
}

/** Measures `op` and `baselineOp` in alternating rounds; answers their median rates (ops/s). */
export async function compareRates(
  op: () => Promise<unknown>,
  baselineOp: () => Promise<unknown>,
  options: CompareOptions = {},
): Promise<{ rate: number; baselineRate: number }> {
  const { rounds = 7, roundMs = 700, warmupMs = 500, concurrency = 1 } = options;
  await runFor(baselineOp, warmupMs, concurrency);
  await runFor(op, warmupMs, concurrency);
  const rates: number[] = [];
  const baselineRates: number[] = [];
  for (let round = 0; round < rounds; round++) {
    baselineRates.push(await runFor(baselineOp, roundMs, concurrency));
    rates.push(await runFor(op, roundMs, concurrency));
  }
  return { rate: median(rates), baselineRate: median(baselineRates) };
}

/** Runs `op` for `ms`, `concurrency` at a time; answers operations per second. */
async function runFor(op: () => Promise<unknown>, ms: number, concurrency: number) {
  let count = 0;
  const startedAt = performance.now();
  const end = startedAt + ms;
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (performance.now() < end) {
      await op();
      count++;
    }
  }));
  return count / ((performance.now() - startedAt) / 1000);
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

/** Sends a request and reads the whole answer, failing loudly on an unexpected status. */
export async function fetchOk(input: string, init: RequestInit, status = 200): Promise<void> {
  const res = await fetch(input, init);
  await res.arrayBuffer();
  if (res.status !== status) throw new Error(`${input} answered ${res.status}`);
}
