// GET /metrics: Prometheus text exposition (version 0.0.4). Counters of requests by HTTP status and of tokens; the
// batcher's queue depth, running sequences and batch occupancy; generated tokens per second over the last window.

import type { BatcherStats } from '../generate/batcher.js';

/** Seconds over which the tok/s gauge averages. */
const WINDOW_S = 10;

export class Metrics {
  private readonly requests = new Map<number, number>();
  private readonly samples: { t: number; tokens: number }[] = [];

  /** A finished chat completion request (any status). */
  countRequest(status: number): void {
    this.requests.set(status, (this.requests.get(status) ?? 0) + 1);
  }

  /** Text of the exposition for the batcher's current stats. */
  render(stats: BatcherStats, preparing: number): string {
    const now = performance.now() / 1000;
    this.samples.push({ t: now, tokens: stats.generatedTokens });
    while (this.samples.length > 1 && now - this.samples[1].t >= WINDOW_S) this.samples.shift();
    const first = this.samples[0];
    const rate = now > first.t ? (stats.generatedTokens - first.tokens) / (now - first.t) : 0;
    const out: string[] = [];
    const metric = (name: string, type: 'counter' | 'gauge', help: string, lines: string[]) =>
      out.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`, ...lines);
    const requests = [...this.requests]
      .sort(([a], [b]) => a - b)
      .map(([status, n]) => `glm4v_requests_total{status="${status}"} ${n}`);
    metric(
      'glm4v_requests_total',
      'counter',
      'Chat completion requests answered, by HTTP status.',
      requests.length ? requests : ['glm4v_requests_total{status="200"} 0'],
    );
    metric('glm4v_prompt_tokens_total', 'counter', 'Prompt tokens prefilled.', [
      `glm4v_prompt_tokens_total ${stats.promptTokens}`,
    ]);
    metric('glm4v_generation_tokens_total', 'counter', 'Tokens generated.', [
      `glm4v_generation_tokens_total ${stats.generatedTokens}`,
    ]);
    metric('glm4v_decode_steps_total', 'counter', 'Batched decode steps run.', [
      `glm4v_decode_steps_total ${stats.decodeSteps}`,
    ]);
    metric(
      'glm4v_decode_rows_total',
      'counter',
      'Sequences over all decode steps (rate / steps rate = mean batch size).',
      [`glm4v_decode_rows_total ${stats.decodeRows}`],
    );
    metric(
      'glm4v_queue_depth',
      'gauge',
      'Requests waiting for a slot (including those whose media are being prepared).',
      [`glm4v_queue_depth ${stats.waiting + preparing}`],
    );
    metric('glm4v_requests_running', 'gauge', 'Sequences holding a slot (prefilling or decoding).', [
      `glm4v_requests_running ${stats.active}`,
    ]);
    metric('glm4v_batch_occupancy', 'gauge', 'Slots in use over slots (max batch).', [
      `glm4v_batch_occupancy ${stats.active / stats.maxBatch}`,
    ]);
    metric('glm4v_max_batch', 'gauge', 'Sequences decoded together at most.', [`glm4v_max_batch ${stats.maxBatch}`]);
    metric('glm4v_generation_tokens_per_second', 'gauge', `Tokens generated per second over the last ${WINDOW_S} s.`, [
      `glm4v_generation_tokens_per_second ${rate.toFixed(3)}`,
    ]);
    return out.join('\n') + '\n';
  }
}
