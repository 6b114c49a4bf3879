import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { copyFile, mkdir, mkdtemp, rm, truncate } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  AbortError,
  CheckpointError,
  type ChunkedTensor,
  Device,
  InputError,
  LimitError,
  bf16ToF32,
  itemSize,
} from '@glm4v/core';
import { rng } from '@glm4v/core/testing';
import { Checkpoint } from './checkpoint.js';
import { loadCheckpoint } from './load-checkpoint.js';
import type { LoadProgress } from './upload.js';
import { WeightLoader } from './weight-loader.js';
import { encodeHeader, writeSafetensors, type TensorData } from './writer.js';

const fixture = (kind: 'f32' | 'bf16') =>
  fileURLToPath(new URL(`../../../../conformance/fixtures/tiny-glm4v-${kind}/`, import.meta.url));

let device: Device;
let tmp: string;
beforeAll(async () => {
  device = await Device.create();
  tmp = await mkdtemp(join(tmpdir(), 'glm4v-weights-'));
});
afterAll(async () => {
  device?.dispose();
  await rm(tmp, { recursive: true, force: true });
});

/** The matrix's bytes as the checkpoint stores them (each chunk's word padding dropped). */
async function bytesOf(m: ChunkedTensor): Promise<Uint8Array> {
  const rowBytes = m.rowSize * itemSize(m.dtype);
  const out = new Uint8Array(m.rows * rowBytes);
  for (const c of m.chunks) out.set((await c.tensor.readBytes()).subarray(0, c.rows * rowBytes), c.rowStart * rowBytes);
  return out;
}

function randomBytes(n: number, seed: number): Uint8Array {
  const r = rng(seed);
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = (r() * 256) | 0;
  return out;
}

let nth = 0;
async function folder(tensors: TensorData[]): Promise<string> {
  const dir = join(tmp, `m${nth++}`);
  await mkdir(dir);
  await copyFile(join(fixture('f32'), 'config.json'), join(dir, 'config.json'));
  await writeSafetensors(join(dir, 'model.safetensors'), tensors);
  return dir;
}

function expectMonotone(events: LoadProgress[], total: number): void {
  expect(events.length).toBeGreaterThan(0);
  for (let i = 1; i < events.length; i++) expect(events[i].bytesDone).toBeGreaterThanOrEqual(events[i - 1].bytesDone);
  for (const e of events) expect(e.bytesTotal).toBe(total);
  expect(events.at(-1)!.bytesDone).toBe(total);
}

describe('loadCheckpoint on the tiny reference checkpoints', () => {
  for (const kind of ['f32', 'bf16'] as const) {
    it(`${kind}: every tensor reaches the GPU byte for byte, in the checkpoint's dtype, with monotone progress`, async () => {
      const before = device.pool.stats.bytesInUse;
      const events: LoadProgress[] = [];
      // Small staging and chunks so that tensors span many pieces and row chunks.
      const loaded = await loadCheckpoint(fixture(kind), device, {
        maxStagingBytes: 16 * 1024,
        maxChunkBytes: 8192,
        onProgress: (p) => events.push(p),
      });
      const ckpt = await Checkpoint.open(fixture(kind));
      expect(loaded.tensors.size).toBe(ckpt.tensors.size);
      expect(loaded.config.vision.depth).toBe(2);
      for (const info of ckpt.tensors.values()) {
        const m = loaded.tensors.get(info.name)!;
        expect(m.dtype).toBe(kind);
        expect(m.shape).toEqual(info.shape);
        expect(Buffer.compare(await bytesOf(m), await ckpt.read(info)), info.name).toBe(0);
      }
      expect(loaded.tensors.get('lm_head.weight')!.chunks.length).toBe(kind === 'f32' ? 16 : 8);
      expectMonotone(events, ckpt.totalBytes);
      await ckpt.close();
      loaded.dispose();
      expect(device.pool.stats.bytesInUse).toBe(before);
    });
  }
});

describe('WeightLoader', () => {
  it('scoped get/matrix/rows check shapes, keep bf16 packed, reshape with `as`, and split fused rows', async () => {
    const ckpt = await Checkpoint.open(fixture('bf16'));
    const before = device.pool.stats.bytesInUse;
    const w = new WeightLoader(ckpt, device);
    const attn = w.scope('model.language_model').scope('layers.0.self_attn');
    expect(attn.prefix).toBe('model.language_model.layers.0.self_attn');
    expect(attn.has('q_proj.weight')).toBe(true);
    expect(attn.has('o_proj.bias')).toBe(false);

    const q = await attn.get('q_proj.weight', [64, 64]);
    expect(q.dtype).toBe('bf16');
    expect(q.byteSize).toBe(64 * 64 * 2); // packed pairs, no conversion
    const qInfo = ckpt.tensors.get('model.language_model.layers.0.self_attn.q_proj.weight')!;
    expect(Buffer.compare(await q.readBytes(), await ckpt.read(qInfo))).toBe(0);

    const vis = w.scope('model.visual');
    const down = await vis.matrix('downsample.weight', [64, 32, 2, 2], { as: [64, 128] });
    expect(down.shape).toEqual([64, 128]);
    expect(
      Buffer.compare(await bytesOf(down), await ckpt.read(ckpt.tensors.get('model.visual.downsample.weight')!)),
    ).toBe(0);

    const qkvInfo = ckpt.tensors.get('model.visual.blocks.0.attn.qkv.weight')!;
    const parts = await vis.scope('blocks.0.attn').rows(
      'qkv.weight',
      [96, 32],
      [
        [0, 32],
        [32, 64],
        [64, 96],
      ],
      { maxChunkBytes: 1024 },
    );
    const all = await ckpt.read(qkvInfo);
    for (const p of parts) expect(p.shape).toEqual([32, 32]);
    for (let i = 0; i < 3; i++)
      expect(Buffer.compare(await bytesOf(parts[i]), all.subarray(i * 2048, (i + 1) * 2048))).toBe(0);
    expect(parts[0].chunks.length).toBe(2);

    // Shape, dtype and reshape errors name the file, the key, what was expected and what was found.
    await expect(attn.get('k_proj.weight', [64, 64])).rejects.toThrow(
      new RegExp(
        `${ckpt.tensors.get('model.language_model.layers.0.self_attn.k_proj.weight')!.file}: tensor 'model.language_model.layers.0.self_attn.k_proj.weight': expected shape \\[64, 64\\], found \\[32, 64\\]`,
      ),
    );
    await expect(attn.get('v_proj.weight', [32, 64], { dtype: 'f32' })).rejects.toThrow(
      /tensor 'model.language_model.layers.0.self_attn.v_proj.weight': expected dtype f32, found BF16/,
    );
    await expect(attn.matrix('o_proj.weight', [64, 64], { as: [63, 64] })).rejects.toBeInstanceOf(InputError);
    await expect(vis.matrix('blocks.1.attn.proj.weight', [32, 32], { maxChunkBytes: 32 })).rejects.toThrow(
      /tensor 'model.visual.blocks.1.attn.proj.weight' \[32, 32\]: one row of 64 bytes does not fit a chunk of at most 32 bytes/,
    );
    await expect(vis.rows('blocks.1.attn.qkv.weight', [96, 32], [[0, 97]])).rejects.toThrow(
      /row range \[0, 97\) is not a non-empty range inside \[0, 96\)/,
    );
    const missing = await attn.get('o_proj.bias', [64]).catch((e) => e);
    expect(missing).toBeInstanceOf(CheckpointError);
    expect(missing.message).toMatch(
      /tensor 'model.language_model.layers.0.self_attn.o_proj.bias' not found \(expected shape \[64\]\)/,
    );

    // finish(): the key asked for but missing, and every key never asked for.
    const e = (() => {
      try {
        w.finish();
      } catch (err) {
        return err as Error;
      }
      throw new Error('finish() should have thrown');
    })();
    expect(e).toBeInstanceOf(CheckpointError);
    expect(e.message).toMatch(
      /1 expected key\(s\) missing:\n {4}model.language_model.layers.0.self_attn.o_proj.bias\n/,
    );
    // 69 tensors; taken: q, downsample, qkv of block 0, and (despite their errors) k, v, o, block 1's proj and qkv.
    expect(e.message).toMatch(/61 key\(s\) present but unused:\n {4}lm_head.weight in .*model.safetensors/);
    expect(e.message).not.toMatch(/layers\.0\.self_attn\.q_proj\.weight in/);
    q.dispose();
    w.dispose();
    expect(device.pool.stats.bytesInUse).toBe(before);
    await ckpt.close();
  });

  it('finish() passes when the model took every key, and reports renamed keys by their stored name', async () => {
    const dir = await folder([
      { name: 'model.norm.weight', dtype: 'F32', shape: [4], data: new Float32Array([1, 2, 3, 4]) },
      { name: 'visual.extra', dtype: 'F32', shape: [2], data: new Float32Array(2) },
    ]);
    const ckpt = await Checkpoint.open(dir);
    const w = new WeightLoader(ckpt, device);
    const t = await w.scope('model.language_model').get('norm.weight', [4]);
    expect(Array.from(await t.read())).toEqual([1, 2, 3, 4]);
    expect(() => w.finish()).toThrow(
      /1 key\(s\) present but unused:\n {4}model.visual.extra \(stored as visual.extra\)/,
    );
    await w.scope('model.visual').get('extra', [2]);
    expect(() => w.finish()).not.toThrow();
    w.dispose();
    await ckpt.close();
  });

  it('bf16 with odd element counts: padded words, chunk boundaries at odd elements, many small pieces, concurrent requests', async () => {
    const a = randomBytes(21 * 2, 1); // [7, 3] bf16
    const b = randomBytes(5 * 2, 2); // [5] bf16
    const c = randomBytes(1001 * 3 * 2, 3); // [1001, 3] bf16, 6006 bytes: ~24 pieces of 256 bytes
    const dir = await folder([
      { name: 'a', dtype: 'BF16', shape: [7, 3], data: a },
      { name: 'b', dtype: 'BF16', shape: [5], data: b },
      { name: 'c', dtype: 'BF16', shape: [1001, 3], data: c },
      { name: 'i', dtype: 'I32', shape: [3], data: new Int32Array([-1, 7, 2 ** 30]) },
    ]);
    const ckpt = await Checkpoint.open(dir);
    const before = device.pool.stats.bytesInUse;
    const w = new WeightLoader(ckpt, device, { maxStagingBytes: 1024 });
    const root = w.scope('');
    const [ma, tb, mc, ti] = await Promise.all([
      root.matrix('a', [7, 3], { maxChunkBytes: 12 }), // 2 rows (4 words... 12 bytes) per chunk: chunks start at elements 0, 6, 12, 18
      root.get('b', [5]),
      root.matrix('c', [1001, 3]),
      root.get('i', [3]),
    ]);
    expect(ma.chunks.map((x) => x.rows)).toEqual([2, 2, 2, 1]);
    expect(await bytesOf(ma)).toEqual(a);
    const vb = await tb.read();
    for (let k = 0; k < 5; k++) expect(vb[k]).toBe(bf16ToF32(b[2 * k] | (b[2 * k + 1] << 8)));
    expect((await tb.readBytes()).subarray(10, 12)).toEqual(new Uint8Array(2)); // the padding half-word is zero
    expect(await bytesOf(mc)).toEqual(c);
    expect(Array.from(await ti.read())).toEqual([-1, 7, 2 ** 30]);
    expect(w.stagingBytes).toBeLessThanOrEqual(1024);
    w.finish();
    w.dispose();
    expect(device.pool.stats.bytesInUse).toBe(before);
    await ckpt.close();
  });

  it('refuses a tensor larger than one binding in get(), before allocating', async () => {
    const dir = join(tmp, `big${nth++}`);
    await mkdir(dir);
    const shape = [40 * 2 ** 20]; // 160 MiB of f32, above lavapipe's 128 MiB binding (sparse on disk)
    const { header } = encodeHeader([{ name: 'big', dtype: 'F32', shape }]);
    await writeSafetensors(join(dir, 'model.safetensors'), [
      { name: 'tiny', dtype: 'F32', shape: [1], data: new Float32Array(1) },
    ]);
    const { writeFile } = await import('node:fs/promises');
    await writeFile(join(dir, 'model.safetensors'), header);
    await truncate(join(dir, 'model.safetensors'), header.byteLength + shape[0] * 4);
    const ckpt = await Checkpoint.open(dir);
    const before = device.pool.stats.bytesInUse;
    const w = new WeightLoader(ckpt, device);
    const e = await w
      .scope('')
      .get('big', shape)
      .catch((x) => x);
    if (device.limits.maxStorageBufferBindingSize < shape[0] * 4) {
      expect(e).toBeInstanceOf(LimitError);
      expect(e.message).toMatch(
        /tensor 'big' \[41943040\] needs 167772160 bytes, above the \d+-byte storage binding limit: load it with matrix\(\)/,
      );
    } else {
      e.dispose?.();
    }
    w.dispose();
    expect(device.pool.stats.bytesInUse).toBe(before);
    await ckpt.close();
  });

  it('refuses a bad staging budget and tensors of dtypes the GPU cannot hold', async () => {
    const dir = await folder([{ name: 'ids', dtype: 'I64', shape: [2], data: new BigInt64Array([1n, 2n]) }]);
    const ckpt = await Checkpoint.open(dir);
    expect(() => new WeightLoader(ckpt, device, { maxStagingBytes: 100 })).toThrow(InputError);
    const w = new WeightLoader(ckpt, device);
    await expect(w.scope('').get('ids', [2])).rejects.toThrow(/tensor 'ids': dtype I64 cannot be used on the GPU/);
    await ckpt.close();
  });
});

describe('load failures release everything', () => {
  async function bigFolder(): Promise<{ dir: string; total: number }> {
    const tensors: TensorData[] = [];
    for (let i = 0; i < 8; i++)
      tensors.push({
        name: `model.language_model.layers.${i}.mlp.down_proj.weight`,
        dtype: 'BF16',
        shape: [256, 1024],
        data: randomBytes(256 * 1024 * 2, 10 + i),
      });
    return { dir: await folder(tensors), total: 8 * 256 * 1024 * 2 };
  }

  it('an AbortSignal fired mid-load gives AbortError and frees every tensor uploaded so far', async () => {
    const { dir, total } = await bigFolder();
    const before = device.pool.stats.bytesInUse;
    const ctrl = new AbortController();
    let peak = 0;
    const e = await loadCheckpoint(dir, device, {
      signal: ctrl.signal,
      maxStagingBytes: 64 * 1024,
      onProgress: (p) => {
        peak = Math.max(peak, device.pool.stats.bytesInUse - before);
        if (p.bytesDone >= total / 2) ctrl.abort();
      },
    }).catch((x) => x);
    expect(e).toBeInstanceOf(AbortError);
    expect(e.message).toMatch(/aborted/);
    expect(peak).toBeGreaterThanOrEqual(total / 2); // it really was mid-load
    expect(device.pool.stats.bytesInUse).toBe(before);
    // An already-aborted signal allocates nothing.
    const ckpt = await Checkpoint.open(dir);
    const w = new WeightLoader(ckpt, device, { signal: AbortSignal.abort() });
    await expect(
      w.scope('model.language_model.layers.0.mlp').matrix('down_proj.weight', [256, 1024]),
    ).rejects.toBeInstanceOf(AbortError);
    expect(device.pool.stats.bytesInUse).toBe(before);
    await ckpt.close();
  });

  it('dispose() after one request of a Promise.all failed also frees what the others were still uploading', async () => {
    const { dir } = await bigFolder();
    const ckpt = await Checkpoint.open(dir);
    const before = device.pool.stats.bytesInUse;
    const w = new WeightLoader(ckpt, device, { maxStagingBytes: 64 * 1024 });
    const layers = w.scope('model.language_model.layers');
    const requests = [0, 1, 2, 3].map((i) => layers.matrix(`${i}.mlp.down_proj.weight`, [256, 1024]));
    const all = Promise.all([...requests, layers.get('4.mlp.down_proj.weight', [1024, 256])]);
    await expect(all).rejects.toThrow(/expected shape \[1024, 256\], found \[256, 1024\]/);
    w.dispose(); // what a model's load does on failure, while requests 0..3 are still queued or uploading
    const settled = await Promise.allSettled(requests);
    expect(settled.some((s) => s.status === 'rejected' && s.reason instanceof AbortError)).toBe(true);
    expect(device.pool.stats.bytesInUse).toBe(before);
    await ckpt.close();
  });

  it('a shard truncated after opening fails the load naming file and tensor, and frees everything', async () => {
    const { dir } = await bigFolder();
    const ckpt = await Checkpoint.open(dir);
    const before = device.pool.stats.bytesInUse;
    const w = new WeightLoader(ckpt, device, { maxStagingBytes: 64 * 1024 });
    const scope = w.scope('model.language_model.layers');
    await scope.matrix('0.mlp.down_proj.weight', [256, 1024]);
    const victim = ckpt.tensors.get('model.language_model.layers.3.mlp.down_proj.weight')!;
    await truncate(victim.file, victim.offset + 100_000);
    await scope.matrix('1.mlp.down_proj.weight', [256, 1024]);
    await scope.matrix('2.mlp.down_proj.weight', [256, 1024]);
    const e = await scope.matrix('3.mlp.down_proj.weight', [256, 1024]).catch((x) => x);
    expect(e).toBeInstanceOf(CheckpointError);
    expect(e.message).toMatch(
      new RegExp(
        `${victim.file}: tensor 'model.language_model.layers.3.mlp.down_proj.weight' ends early: expected 524288 bytes`,
      ),
    );
    expect(device.pool.stats.bytesInUse - before).toBe(3 * 256 * 1024 * 2); // the failed tensor is already freed
    w.dispose();
    expect(device.pool.stats.bytesInUse).toBe(before);
    await ckpt.close();
  });

  it('a config error stops the load before anything reaches the GPU', async () => {
    const dir = await folder([{ name: 'x', dtype: 'F32', shape: [1], data: new Float32Array(1) }]);
    const { writeFile } = await import('node:fs/promises');
    await writeFile(join(dir, 'config.json'), JSON.stringify({ vision_config: {} }));
    const before = device.pool.stats.bytesInUse;
    await expect(loadCheckpoint(dir, device)).rejects.toThrow(/config.json: missing required field 'hidden_size'/);
    expect(device.pool.stats.bytesInUse).toBe(before);
  });
});
