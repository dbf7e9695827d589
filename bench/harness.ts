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
  /** The ratio we promise (rate / baselineRate at least this); null: printed, not promised. */
  target: number | null;
  unit: string;
  baseline: string;
  /** A ratio measured alongside, that explains this one. */
  reference?: { what: string; ratio: number };
  /** CPU microseconds per operation, of the subject and of the baseline, when measured. */
  cpu?: { subject: CpuTime; baseline: CpuTime };
  /** Further figures with targets of their own (a CPU or latency ratio), each with its verdict. */
  checks?: Check[];
  /** Figures printed under the result, without a target. */
  notes?: string[];
}

/** A figure and the bound we promise for it. */
export interface Check {
  /** What the figure is, e.g. "CPU per request, this process ÷ the baseline's". */
  what: string;
  value: number;
  /** The figure must be at most this (a cost)… */
  atMost?: number;
  /** …or at least this (a rate). */
  atLeast?: number;
}

/** Whether a check meets its bound. */
export function meets(check: Check): boolean {
  return (check.atMost === undefined || check.value <= check.atMost) &&
    (check.atLeast === undefined || check.value >= check.atLeast);
}

/** Every verdict of a result: its rate ratio (when it has a target) and its own checks. */
export function verdicts(result: BenchResult): Check[] {
  const rate: Check[] = result.target === null ? [] : [{
    what: "ratio",
    value: result.rate / result.baselineRate,
    atLeast: result.target,
  }];
  return [...rate, ...(result.checks ?? [])];
}

/** The report: each result with its ratio, figures and verdicts, then how many targets are met. */
export function report(results: BenchResult[], heading: string): string {
  const lines = [`\n${heading}\n`];
  let met = 0, missed = 0;
  for (const r of results) {
    const ratio = r.rate / r.baselineRate;
    lines.push(
      `${r.name}: ${r.rate.toFixed(0)} ${r.unit} vs ${r.baselineRate.toFixed(0)} baseline ` +
        `(${r.baseline})`,
    );
    if (r.target === null && !r.checks?.length) {
      lines.push(`  ratio ${ratio.toFixed(2)} (no target)`);
    }
    for (const check of verdicts(r)) {
      const ok = meets(check);
      if (ok) met++;
      else missed++;
      const bound = check.atMost !== undefined ? `≤ ${check.atMost}` : `≥ ${check.atLeast}`;
      lines.push(
        `  ${check.what} ${check.value.toFixed(2)} (target ${bound}) ` +
          (ok ? "meets target" : "BELOW TARGET"),
      );
    }
    if (r.reference) {
      lines.push(`  for reference, ${r.reference.what}: ratio ${r.reference.ratio.toFixed(2)}`);
    }
    if (r.cpu) {
      lines.push(
        `  CPU per operation: ${cpuText(r.cpu.subject)}; baseline ${cpuText(r.cpu.baseline)}`,
      );
    }
    for (const note of r.notes ?? []) lines.push(`  ${note}`);
  }
  lines.push(
    `\n${met} of ${met + missed} targets met` + (missed ? `; ${missed} BELOW TARGET` : ""),
  );
  return lines.join("\n");
}

function cpuText(cpu: CpuTime): string {
  const database = cpu.database === null ? "" : `, Postgres ${cpu.database.toFixed(0)} µs`;
  return `this process ${cpu.process.toFixed(0)} µs${database}`;
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

export function median(values: number[]): number {
  return percentile(values, 50);
}

/** The nearest-rank percentile `p` (0–100) of `values`. */
export function percentile(values: number[], p: number): number {
  if (values.length === 0) throw new Error("no values");
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))];
}

/** Sends a request and reads the whole answer, failing loudly on an unexpected status. */
export async function fetchOk(input: string, init: RequestInit, status = 200): Promise<void> {
  const res = await fetch(input, init);
  await res.arrayBuffer();
  if (res.status !== status) throw new Error(`${input} answered ${res.status}`);
}
