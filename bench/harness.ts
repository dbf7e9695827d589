/**
 * Benchmark harness: every figure is a ratio against a baseline measured in the same run, on the
 * same machine, so the numbers mean something on any hardware.
 */

export interface BenchResult {
  name: string;
  /** Operations per second of the thing measured. */
  rate: number;
  /** Operations per second of the baseline, measured in the same run. */
  baselineRate: number;
  /** The ratio we promise (rate / baselineRate at least this). */
  target: number;
  unit: string;
  baseline: string;
}

/** Runs `op` for `durationMs` after a warm-up, `concurrency` at a time; answers operations/s. */
export async function measureRate(
  op: () => Promise<unknown>,
  options: { durationMs?: number; warmupMs?: number; concurrency?: number } = {},
): Promise<number> {
  const { durationMs = 3000, warmupMs = 500, concurrency = 1 } = options;
  const runFor = async (ms: number) => {
    let count = 0;
    const end = performance.now() + ms;
    await Promise.all(Array.from({ length: concurrency }, async () => {
      while (performance.now() < end) {
        await op();
        count++;
      }
    }));
    return count;
  };
  await runFor(warmupMs);
  const startedAt = performance.now();
  const count = await runFor(durationMs);
  return count / ((performance.now() - startedAt) / 1000);
}

/** Sends a request and reads the whole answer, failing loudly on an unexpected status. */
export async function fetchOk(input: string, init: RequestInit, status = 200): Promise<void> {
  const res = await fetch(input, init);
  await res.arrayBuffer();
  if (res.status !== status) throw new Error(`${input} answered ${res.status}`);
}
