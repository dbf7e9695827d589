/**
 * Benchmark harness: every figure is a ratio against a baseline measured in the same run, on the
 * same machine, so the numbers mean something on any hardware. The two are measured in alternating
 * short rounds and each rate is the median of its rounds, so a machine that speeds up or slows
 * down during the run (a shared VM) affects both alike.
 */
import { type CpuMeter, type CpuTime, cpuUsed } from "./cpu.ts";

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
  /** A ratio measured alongside, that explains this one. */
  reference?: { what: string; ratio: number };
  /** CPU microseconds per operation, of the subject and of the baseline, when measured. */
  cpu?: { subject: CpuTime; baseline: CpuTime };
}

export interface CompareOptions {
  rounds?: number;
  roundMs?: number;
  warmupMs?: number;
  /** Operations in flight at once. */
  concurrency?: number;
  /** Also measure the CPU each operation costs. */
  cpu?: CpuMeter;
}

/**
 * Measures `op` and `baselineOp` in alternating rounds; answers their median rates (ops/s) and,
 * with a CPU meter, what each operation cost in CPU over all rounds.
 */
export async function compareRates(
  op: () => Promise<unknown>,
  baselineOp: () => Promise<unknown>,
  options: CompareOptions = {},
): Promise<Pick<BenchResult, "rate" | "baselineRate" | "cpu">> {
  const { rounds = 7, roundMs = 700, warmupMs = 500, concurrency = 1, cpu } = options;
  await runFor(baselineOp, warmupMs, concurrency);
  await runFor(op, warmupMs, concurrency);
  const subject = { rates: [] as number[], ...cpuTally() };
  const baseline = { rates: [] as number[], ...cpuTally() };
  for (let round = 0; round < rounds; round++) {
    for (const [side, run] of [[baseline, baselineOp], [subject, op]] as const) {
      const before = await cpu?.();
      const { count, seconds } = await runFor(run, roundMs, concurrency);
      const after = await cpu?.();
      side.rates.push(count / seconds);
      if (before && after) side.add(cpuUsed(before, after), count);
    }
  }
  return {
    rate: median(subject.rates),
    baselineRate: median(baseline.rates),
    cpu: cpu ? { subject: subject.perOperation(), baseline: baseline.perOperation() } : undefined,
  };
}

/** Sums CPU over rounds; answers it per operation. */
function cpuTally() {
  let operations = 0, process = 0, database: number | null = 0;
  return {
    add(used: CpuTime, count: number) {
      operations += count;
      process += used.process;
      database = database === null || used.database === null ? null : database + used.database;
    },
    perOperation: (): CpuTime => ({
      process: process / operations,
      database: database === null ? null : database / operations,
    }),
  };
}

/** Runs `op` for `ms`, `concurrency` at a time; answers how many ran, in how many seconds. */
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
  return { count, seconds: (performance.now() - startedAt) / 1000 };
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
