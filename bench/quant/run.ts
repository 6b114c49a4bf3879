// How q4's layout was chosen: error and speed of the candidates, measured side by side (docs/quantization.md).
//   npm run bench:quant -- [--rows 256] [--reps 3] [--time 800] [--no-speed] [--json]
// Error (on the host, deterministic): relative RMS error of the weights and of y = W·x over 4096-wide rows drawn
// three ways: Gaussian; Student-t with 5 degrees of freedom (the heavy tails of trained weights); Gaussian with
// a few input channels 8× larger (the outlier channels of LLM weights). x is Gaussian, then again with 1% of its
// features 20× larger (LLM activations have such outliers). Candidates: q4 with groups of 32 or 64 and f16 scale
// and min (the runtime's readers), and the same with f32 scale and min (computed here only, to price the f16
// rounding); q8 for scale.
// Speed (on this device): the matvec kernel linear() picks here, for groups of 32 and 64, at the decoder's shapes
// and lm_head, alternating the two, best of --reps.

import { Device, Graph, Tensor } from '@glm4v/core';
import { normal, rng } from '@glm4v/core/testing';
import {
  QUANT_FORMATS,
  type QuantLayout,
  QuantizedMatrix,
  dequantizeRows,
  fillRandom,
  linear,
  quantizeRows,
  rowBytes,
} from '@glm4v/kernels';
import { timeCase } from '../kernels/harness.js';

const K = 4096;
const Q4G32: QuantLayout = { name: 'q4g32', bits: 4, block: 32 };
const LAYOUTS: QuantLayout[] = [QUANT_FORMATS.q8, Q4G32, QUANT_FORMATS.q4];
const label = (l: QuantLayout) => (l.bits === 8 ? l.name : `q4 g${l.block} f16`);

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

/** Student-t (ν = 5) values with unit variance. */
function studentT(n: number, seed: number): Float32Array {
  const z = normal(n * 6, seed);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    let chi = 0;
    for (let j = 1; j < 6; j++) chi += z[6 * i + j] ** 2;
    out[i] = z[6 * i] / Math.sqrt(chi / 5) / Math.sqrt(5 / 3);
  }
  return out;
}

function weights(kind: string, rows: number): Float32Array {
  if (kind === 'student-t') return studentT(rows * K, 1);
  const w = normal(rows * K, 2);
  if (kind === 'outlier channels') {
    const r = rng(3);
    const channels = Array.from({ length: 16 }, () => Math.floor(r() * K));
    for (let n = 0; n < rows; n++) for (const c of channels) w[n * K + c] *= 8;
  }
  return w;
}

/** The f32-scale alternative (not a runtime format): q4 min/max with d and m left unrounded. */
function q4f32(w: Float32Array, rows: number, block: number): Float64Array {
  const out = new Float64Array(w.length);
  for (let r = 0; r < rows; r++) {
    for (let k0 = 0; k0 < K; k0 += block) {
      const v = w.subarray(r * K + k0, r * K + k0 + block);
      const lo = Math.fround(Math.min(...v));
      const d = Math.fround((Math.max(...v) - lo) / 15);
      v.forEach(
        (x, i) =>
          (out[r * K + k0 + i] =
            d === 0 ? lo : Math.fround(d * Math.min(15, Math.max(0, Math.round((x - lo) / d))) + lo)),
      );
    }
  }
  return out;
}

function relErrors(w: Float32Array, back: Float64Array, rows: number, xs: Float32Array[]): number[] {
  let dw = 0;
  let sw = 0;
  for (let i = 0; i < w.length; i++) {
    dw += (back[i] - w[i]) ** 2;
    sw += w[i] ** 2;
  }
  const out = [Math.sqrt(dw / sw)];
  for (const x of xs) {
    let dy = 0;
    let sy = 0;
    for (let n = 0; n < rows; n++) {
      let y = 0;
      let e = 0;
      for (let k = 0; k < K; k++) {
        y += w[n * K + k] * x[k];
        e += (back[n * K + k] - w[n * K + k]) * x[k];
      }
      dy += e * e;
      sy += y * y;
    }
    out.push(Math.sqrt(dy / sy));
  }
  return out;
}

function errorTable(rows: number): Record<string, Record<string, string>> {
  const x = normal(K, 9);
  const xOut = Float32Array.from(x, (v, k) => (k % 100 === 7 ? 20 * v : v));
  const table: Record<string, Record<string, string>> = {};
  const pct = (v: number) => `${(100 * v).toFixed(2)}%`;
  for (const kind of ['gaussian', 'student-t', 'outlier channels']) {
    const w = weights(kind, rows);
    const add = (name: string, back: Float64Array) => {
      const [ew, ey, eyOut] = relErrors(w, back, rows, [x, xOut]);
      table[`${kind}: ${name}`] = { 'weights rms': pct(ew), 'W·x rms': pct(ey), 'W·x rms (outlier x)': pct(eyOut) };
    };
    for (const l of LAYOUTS) add(label(l), dequantizeRows(l, quantizeRows(l, w, rows, K, kind), rows, K));
    for (const block of [32, 64]) add(`q4 g${block} f32`, q4f32(w, rows, block));
  }
  return table;
}

async function speedTable(
  device: Device,
  reps: number,
  budget: number,
): Promise<Record<string, Record<string, string>>> {
  const shapes: [number, number][] = [
    [4096, 4096],
    [13696, 4096],
    [4096, 27392],
    [4096, 151552],
  ];
  const best = new Map<string, number>();
  for (let rep = 0; rep < reps; rep++) {
    for (const [k, n] of shapes) {
      for (const l of [Q4G32, QUANT_FORMATS.q4]) {
        const w = await QuantizedMatrix.empty(device, l, [n, k], l.name);
        const x = await Tensor.empty(device, 'f32', [1, k], 'x');
        const g = new Graph(device);
        fillRandom(g, w, 1, 0.02);
        fillRandom(g, x, 2, 1);
        await g.run();
        g.dispose();
        const run = new Graph(device);
        linear(run, x, w);
        const t = await timeCase(device, { graph: run, dispose: () => run.dispose() }, budget);
        const key = `${k}→${n} g${l.block}`;
        best.set(key, Math.min(best.get(key) ?? Infinity, t.ms));
        const b = rowBytes(l, k);
        best.set(`${key} bytes`, n * (b.data + b.scales));
        for (const o of [run, x, w]) o.dispose();
      }
    }
  }
  const table: Record<string, Record<string, string>> = {};
  for (const [k, n] of shapes) {
    const g32 = best.get(`${k}→${n} g32`)!;
    const g64 = best.get(`${k}→${n} g64`)!;
    table[`${k}→${n}`] = {
      'g32 ms': g32.toFixed(3),
      'g64 ms': g64.toFixed(3),
      'g64 / g32': (g64 / g32).toFixed(3),
      'g32 GB/s': (best.get(`${k}→${n} g32 bytes`)! / g32 / 1e6).toFixed(2),
      'g64 GB/s': (best.get(`${k}→${n} g64 bytes`)! / g64 / 1e6).toFixed(2),
    };
  }
  return table;
}

async function main() {
  const json = process.argv.includes('--json');
  const rows = Number(arg('--rows') ?? 256);
  const out: Record<string, unknown> = {};
  const bits = (l: QuantLayout) => (8 * (rowBytes(l, K).data + rowBytes(l, K).scales)) / K;
  out.bits_per_weight = {
    ...Object.fromEntries(LAYOUTS.map((l) => [label(l), bits(l)])),
    'q4 g32 f32': 4 + 64 / 32,
    'q4 g64 f32': 4 + 64 / 64,
  };
  out.error = errorTable(rows);
  if (!json) {
    console.table(out.bits_per_weight);
    console.table(out.error);
  }
  if (!process.argv.includes('--no-speed')) {
    const device = await Device.create();
    (json ? process.stderr : process.stdout).write(device.describe() + '\n');
    out.speed = await speedTable(device, Number(arg('--reps') ?? 3), Number(arg('--time') ?? 800));
    if (!json) console.table(out.speed);
    device.dispose();
  }
  if (json) console.log(JSON.stringify(out));
}

await main();
