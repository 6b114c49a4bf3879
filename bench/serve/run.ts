// The OpenAI-compatible server under load: 1, 4 and 8 concurrent streaming clients (plain HTTP, as the openai
// client sends it), each sending requests one after another, on the demo checkpoint and on the real model's shapes
// with random weights (2 decoder layers by default on a software adapter). Per row: output tok/s over the wall time
// (all clients together), decode tok/s (the tokens after each request's first, over the same wall time) and its
// multiple of the 1-client row of the same model, the mean batch of the decode steps (from /metrics), p50/p99 time
// to first token (first chunk with text) and p50/p99 time per output token after the first (per request).
//   npm run bench:serve -- [--model demo|real|both] [--clients 1,4,8] [--requests 2] [--max-tokens 32] [--repeat 1] [--layers N] [--json]

import { cp, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { Agent, request } from 'node:http';
import { join } from 'node:path';
import { Device } from '@glm4v/core';
import { isCpuAdapter } from '@glm4v/kernels';
import { ApiServer, Glm4v } from '@glm4v/runtime/internal';
import {
  GLM41V_9B_CONFIG_JSON,
  demoCheckpoint,
  glm41v9bConfig,
  randomModel,
  writeTinyTokenizer,
} from '@glm4v/runtime/testing';

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

const JSON_OUT = process.argv.includes('--json');
const agent = new Agent({ keepAlive: true, maxSockets: 64 });
const log = (s: string) => (JSON_OUT ? process.stderr.write(`${s}\n`) : console.log(s));

interface RequestTiming {
  ttftMs: number;
  /** ms per output token after the first. */
  tpotMs: number;
  tokens: number;
}

/** One streamed request (node:http, lighter than fetch when the clients share the server's process); times taken as chunks arrive. */
function streamOnce(url: string, prompt: string, maxTokens: number): Promise<RequestTiming> {
  const body = JSON.stringify({
    messages: [{ role: 'user', content: prompt }],
    stream: true,
    stream_options: { include_usage: true },
    max_tokens: maxTokens,
    temperature: 0,
    ignore_eos: true,
    skip_special_tokens: false,
  });
  const t0 = performance.now();
  return new Promise((resolve, reject) => {
    const req = request(
      `${url}/v1/chat/completions`,
      {
        method: 'POST',
        agent,
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
      },
      (res) => {
        let first = 0;
        let last = 0;
        let tokens = 0;
        let buf = '';
        res.setEncoding('utf8');
        res.on('data', (part: string) => {
          buf += part;
          let at;
          while ((at = buf.indexOf('\n\n')) >= 0) {
            const line = buf.slice(6, at); // after 'data: '
            buf = buf.slice(at + 2);
            if (res.statusCode !== 200) return reject(new Error(`HTTP ${res.statusCode}: ${line}`));
            if (line === '[DONE]') continue;
            const chunk = JSON.parse(line);
            if (chunk.usage) tokens = chunk.usage.completion_tokens;
            const delta = chunk.choices?.[0]?.delta ?? {};
            if (delta.content || delta.reasoning_content) {
              last = performance.now();
              first ||= last;
            }
          }
        });
        res.on('end', () =>
          res.statusCode === 200
            ? resolve({ ttftMs: first - t0, tpotMs: tokens > 1 ? (last - first) / (tokens - 1) : 0, tokens })
            : reject(new Error(`HTTP ${res.statusCode}: ${buf}`)),
        );
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

const quantile = (xs: number[], q: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))];
};

/** The server's decode steps and rows so far (from /metrics): their ratio over a round is its mean batch. */
async function decodeCounters(url: string): Promise<{ steps: number; rows: number }> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const value = (name: string) => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1] ?? NaN);
  return { steps: value('glm4v_decode_steps_total'), rows: value('glm4v_decode_rows_total') };
}

/** `clients` concurrent clients, each sending `requests` requests in a row. */
async function round(url: string, clients: number, requests: number, maxTokens: number) {
  const before = await decodeCounters(url);
  const t0 = performance.now();
  const timings: RequestTiming[] = [];
  await Promise.all(
    Array.from({ length: clients }, async (_, c) => {
      for (let r = 0; r < requests; r++) timings.push(await streamOnce(url, `Hi ${c}.${r}`, maxTokens));
    }),
  );
  const wallS = (performance.now() - t0) / 1000;
  const after = await decodeCounters(url);
  const tokens = timings.reduce((n, t) => n + t.tokens, 0);
  return {
    clients,
    requests: timings.length,
    output_tokens: tokens,
    wall_s: wallS,
    output_tok_per_s: tokens / wallS,
    // tokens after each request's first (those of decode steps) over the same wall time, prefills included in it
    decode_tok_per_s: (tokens - timings.length) / wallS,
    mean_batch: (after.rows - before.rows) / (after.steps - before.steps),
    ttft_p50_ms: quantile(
      timings.map((t) => t.ttftMs),
      0.5,
    ),
    ttft_p99_ms: quantile(
      timings.map((t) => t.ttftMs),
      0.99,
    ),
    tpot_p50_ms: quantile(
      timings.map((t) => t.tpotMs),
      0.5,
    ),
    tpot_p99_ms: quantile(
      timings.map((t) => t.tpotMs),
      0.99,
    ),
  };
}

/** A folder with the real model's config (at `layers` layers), a tokenizer that decodes every id of its vocabulary, and the demo's chat template and preprocessor config: what Glm4v.fromModel reads. */
async function realShapeFolder(layers: number): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'glm4v-bench-serve-'));
  const config = structuredClone(GLM41V_9B_CONFIG_JSON);
  config.text_config.num_hidden_layers = layers;
  await writeFile(join(dir, 'config.json'), JSON.stringify(config));
  await writeFile(
    join(dir, 'generation_config.json'),
    JSON.stringify({
      eos_token_id: config.eos_token_id,
      pad_token_id: config.pad_token_id,
      do_sample: false,
      max_new_tokens: 8192,
    }),
  );
  await cp(join(await demoCheckpoint(), 'preprocessor_config.json'), join(dir, 'preprocessor_config.json'));
  await writeTinyTokenizer(dir, config.text_config.vocab_size, { fill: true });
  return dir;
}

/**
 * Rounds of 1, 4, 8 … clients, `repeat` times in alternation; per client count the round with the most decode
 * tok/s is kept (load from other processes only ever slows a round).
 */
async function bench(
  name: string,
  model: Glm4v,
  clientCounts: number[],
  requests: number,
  maxTokens: number,
  repeat: number,
) {
  const maxBatch = Math.max(...clientCounts);
  const server = await ApiServer.start(model, {
    modelId: name,
    port: 0,
    maxBatch,
    maxQueue: 4 * maxBatch,
    contextLength: 256,
    media: { maxImagePixels: 1e8 },
  });
  try {
    // warm-up: compiles the pipelines and records the decode graph of every batch size used
    await round(server.url, maxBatch, 1, 2);
    const best = new Map<number, Awaited<ReturnType<typeof round>>>();
    for (let rep = 0; rep < repeat; rep++) {
      for (const c of clientCounts) {
        const r = await round(server.url, c, requests, maxTokens);
        log(
          `${name}: ${c} clients: ${r.decode_tok_per_s.toFixed(2)} decode tok/s (batch ${r.mean_batch.toFixed(2)}), TTFT p50 ${r.ttft_p50_ms.toFixed(0)} ms`,
        );
        if (!best.has(c) || r.decode_tok_per_s > best.get(c)!.decode_tok_per_s) best.set(c, r);
      }
    }
    const device = model.device.adapter.description || model.device.adapter.device;
    const rows = clientCounts.map((c) => ({
      bench: 'serve',
      model: name,
      device,
      max_tokens: maxTokens,
      repeat,
      ...best.get(c)!,
    }));
    const [out, dec] = [rows[0].output_tok_per_s, rows[0].decode_tok_per_s];
    return rows.map((r) => ({
      ...r,
      output_speedup: r.output_tok_per_s / out,
      decode_speedup: r.decode_tok_per_s / dec,
    }));
  } finally {
    await server.shutdown(0);
  }
}

async function main() {
  const which = arg('--model') ?? 'both';
  const clients = (arg('--clients') ?? '1,4,8').split(',').map(Number);
  const requests = Number(arg('--requests') ?? 2);
  const maxTokens = Number(arg('--max-tokens') ?? 32);
  const repeat = Number(arg('--repeat') ?? 1);
  const device = await Device.create();
  const software = isCpuAdapter(device);
  const layers = Number(arg('--layers') ?? (software ? 2 : 40));
  log(device.describe());
  const rows = [];
  if (which === 'demo' || which === 'both') {
    const model = await Glm4v.load(await demoCheckpoint(), { device });
    rows.push(...(await bench('demo', model, clients, requests, maxTokens, repeat)));
    model.dispose();
  }
  if (which === 'real' || which === 'both') {
    log(`GLM-4.1V-9B shapes, random weights: ${layers} decoder layers`);
    const dir = await realShapeFolder(layers);
    const model = await Glm4v.fromModel(
      await randomModel(device, glm41v9bConfig({ layers, visionDepth: 1 }), { seed: 1 }),
      dir,
    );
    rows.push(...(await bench(`glm41v-9b-shapes-${layers}l`, model, clients, requests, maxTokens, repeat)));
    model.dispose();
    await rm(dir, { recursive: true, force: true });
  }
  if (JSON_OUT) for (const r of rows) console.log(JSON.stringify(r));
  else
    console.table(
      rows.map((r) => ({
        model: r.model,
        clients: r.clients,
        'output tok/s': r.output_tok_per_s.toFixed(2),
        'decode tok/s': r.decode_tok_per_s.toFixed(2),
        'x 1 client (decode)': r.decode_speedup.toFixed(2),
        'mean batch': r.mean_batch.toFixed(2),
        'TTFT p50/p99 ms': `${r.ttft_p50_ms.toFixed(0)} / ${r.ttft_p99_ms.toFixed(0)}`,
        'ms/token p50/p99': `${r.tpot_p50_ms.toFixed(1)} / ${r.tpot_p99_ms.toFixed(1)}`,
      })),
    );
  device.dispose();
}

await main();
