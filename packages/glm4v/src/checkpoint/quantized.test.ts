// Quantised linear weights through the loader: quantised on the fly as they stream (bit for bit the host
// quantiser's output, whatever the piece and chunk sizes), loaded as stored from a quantised checkpoint, and every
// mixed, unknown or half-present format refused with a CheckpointError naming the tensor.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { copyFile, mkdir, mkdtemp, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { AbortError, CheckpointError, Device, InputError, bf16ToF32, f16ToF32, f32ToBf16, f32ToF16 } from '@glm4v/core';
import { normal, rejectionOf } from '@glm4v/core/testing';
import { QUANT_FORMATS, type QuantFormat, QuantizedMatrix, quantizeRows, rowBytes } from '@glm4v/kernels';
import { Checkpoint, INDEX_FILE } from './checkpoint.js';
import { quantizeCheckpoint } from './quantize-checkpoint.js';
import { QSCALES, QWEIGHT, formatKey } from './quantized.js';
import type { LoadProgress } from './upload.js';
import { WeightLoader } from './weight-loader.js';
import { type TensorData, writeSafetensors } from './writer.js';

const fixture = (kind: 'f32' | 'bf16') =>
  fileURLToPath(new URL(`../../../../conformance/fixtures/tiny-glm4v-${kind}/`, import.meta.url));

let device: Device;
let tmp: string;
beforeAll(async () => {
  device = await Device.create();
  tmp = await mkdtemp(join(tmpdir(), 'glm4v-quant-'));
});
afterAll(async () => {
  device?.dispose();
  await rm(tmp, { recursive: true, force: true });
});

let nth = 0;
async function folder(tensors: TensorData[], metadata?: Record<string, string>): Promise<string> {
  const dir = join(tmp, `m${nth++}`);
  await mkdir(dir);
  await copyFile(join(fixture('f32'), 'config.json'), join(dir, 'config.json'));
  await writeSafetensors(join(dir, 'model.safetensors'), tensors, metadata);
  return dir;
}

/** The weight's values as f32, from the checkpoint's bytes. */
async function floatsOf(ckpt: Checkpoint, key: string): Promise<Float32Array> {
  const info = ckpt.tensors.get(key)!;
  const b = await ckpt.read(info);
  if (info.dtype === 'F32') return new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
  const bits = new Uint16Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
  return Float32Array.from(bits, bf16ToF32);
}

const Q_PROJ = 'model.language_model.layers.0.self_attn.q_proj.weight';
const QKV = 'model.visual.blocks.0.attn.qkv.weight';

describe('quantising as weights stream', () => {
  for (const [format, kind] of [
    ['q8', 'bf16'],
    ['q4', 'f32'],
  ] as [QuantFormat, 'f32' | 'bf16'][]) {
    it(`${format} from ${kind}: the host quantiser's bits, over many pieces, chunks and row ranges, with monotone progress`, async () => {
      const ckpt = await Checkpoint.open(fixture(kind));
      const before = device.pool.stats.bytesInUse;
      const events: LoadProgress[] = [];
      // 1 KiB of staging (256-byte pieces: one or two rows) and chunks of 5 rows
      const layout = QUANT_FORMATS[format];
      const w = new WeightLoader(ckpt, device, {
        maxStagingBytes: 1024,
        maxChunkBytes: 5 * rowBytes(layout, 64).data,
        quantFormats: { text: format, vision: format },
        onProgress: (p) => events.push(p),
      });
      const [q] = await w
        .scope('model.language_model.layers.0.self_attn')
        .quantizable('q_proj.weight', [64, 64], 'text');
      const parts = await w.scope('model.visual.blocks.0.attn').quantizable('qkv.weight', [96, 32], 'vision', [
        [0, 32],
        [32, 64],
        [64, 96],
      ]);
      expect(q).toBeInstanceOf(QuantizedMatrix);
      expect((q as QuantizedMatrix).chunks.length).toBe(13);
      expect(await (q as QuantizedMatrix).read()).toEqual(
        quantizeRows(layout, await floatsOf(ckpt, Q_PROJ), 64, 64, 'w'),
      );
      const qkv = await floatsOf(ckpt, QKV);
      for (let i = 0; i < 3; i++)
        expect(await (parts[i] as QuantizedMatrix).read(), `qkv part ${i}`).toEqual(
          quantizeRows(layout, qkv.subarray(i * 32 * 32, (i + 1) * 32 * 32), 32, 32, 'w'),
        );
      expect(w.stagingBytes).toBeLessThanOrEqual(1024);
      for (let i = 1; i < events.length; i++)
        expect(events[i].bytesDone).toBeGreaterThanOrEqual(events[i - 1].bytesDone);
      expect(events.at(-1)!.bytesDone).toBe(ckpt.tensors.get(Q_PROJ)!.byteLength + ckpt.tensors.get(QKV)!.byteLength);
      w.dispose();
      expect(device.pool.stats.bytesInUse).toBe(before);
      await ckpt.close();
    });
  }

  it('f16 weights, and no format asked for a group: that group stays as stored', async () => {
    const v = normal(8 * 40, 4, 0.1);
    const dir = await folder([
      { name: 'a.weight', dtype: 'F16', shape: [8, 40], data: Uint16Array.from(v, f32ToF16) },
      { name: 'b.weight', dtype: 'BF16', shape: [8, 40], data: Uint16Array.from(v, f32ToBf16) },
    ]);
    const ckpt = await Checkpoint.open(dir);
    const w = new WeightLoader(ckpt, device, { quantFormats: { text: 'q4' } });
    const [a] = await w.scope('').quantizable('a.weight', [8, 40], 'text');
    const f16 = Float32Array.from(Uint16Array.from(v, f32ToF16), f16ToF32);
    expect(await (a as QuantizedMatrix).read()).toEqual(quantizeRows(QUANT_FORMATS.q4, f16, 8, 40, 'w'));
    const [b] = await w.scope('').quantizable('b.weight', [8, 40], 'vision');
    expect(b).not.toBeInstanceOf(QuantizedMatrix);
    w.finish();
    w.dispose();
    await ckpt.close();
  });

  it('a non-finite weight fails the load naming the file, tensor and row, and frees what it allocated', async () => {
    const v = normal(6 * 32, 5);
    v[3 * 32 + 7] = NaN;
    const dir = await folder([{ name: 'a.weight', dtype: 'F32', shape: [6, 32], data: v }]);
    const ckpt = await Checkpoint.open(dir);
    const before = device.pool.stats.bytesInUse;
    const w = new WeightLoader(ckpt, device, { quantFormats: { text: 'q8' } });
    const e = await rejectionOf(w.scope('').quantizable('a.weight', [6, 32], 'text'));
    expect(e).toBeInstanceOf(CheckpointError);
    expect(e.message).toMatch(
      /model\.safetensors: quantising 'a\.weight' to q8: row 3 has a non-finite weight \(NaN\) at column 7/,
    );
    expect(device.pool.stats.bytesInUse).toBe(before);
    await ckpt.close();
  });

  it('an AbortSignal fired mid-quantisation gives AbortError and frees everything', async () => {
    const tensors: TensorData[] = [0, 1, 2, 3].map((i) => ({
      name: `w${i}.weight`,
      dtype: 'F32',
      shape: [256, 256],
      data: normal(256 * 256, i),
    }));
    const ckpt = await Checkpoint.open(await folder(tensors));
    const before = device.pool.stats.bytesInUse;
    const ctrl = new AbortController();
    const w = new WeightLoader(ckpt, device, {
      signal: ctrl.signal,
      maxStagingBytes: 64 * 1024,
      quantFormats: { text: 'q4' },
      onProgress: (p) => p.bytesDone > 300_000 && ctrl.abort(),
    });
    const e = await rejectionOf(
      Promise.all([0, 1, 2, 3].map((i) => w.scope('').quantizable(`w${i}.weight`, [256, 256], 'text'))),
    );
    expect(e).toBeInstanceOf(AbortError);
    w.dispose();
    expect(device.pool.stats.bytesInUse).toBe(before);
    await ckpt.close();
  });
});

describe('quantised checkpoints', () => {
  it('quantizeCheckpoint writes a folder that loads as stored: the same bits as quantising on load, configs copied', async () => {
    const out = join(tmp, `q${nth++}`);
    const progress: number[] = [];
    await quantizeCheckpoint(
      fixture('bf16'),
      out,
      { text: 'q4', vision: 'q8' },
      { onProgress: (p) => progress.push(p.bytesDone), pieceBytes: 1000 },
    );
    expect((await readdir(out)).sort()).toEqual([
      'config.json',
      'generation_config.json',
      'model.safetensors',
      'preprocessor_config.json',
    ]);
    const src = await Checkpoint.open(fixture('bf16'));
    const ckpt = await Checkpoint.open(out);
    expect(progress.at(-1)).toBe(src.totalBytes);
    expect(ckpt.tensors.has(Q_PROJ)).toBe(false);
    expect(ckpt.tensors.get(Q_PROJ + QWEIGHT)!.dtype).toBe('U8');
    expect(ckpt.file(ckpt.tensors.get(Q_PROJ + QWEIGHT)!).metadata[formatKey(Q_PROJ)]).toBe('q4');
    expect(ckpt.tensors.has('model.language_model.embed_tokens.weight' + QWEIGHT)).toBe(true); // the table joins the decoder's format
    expect(ckpt.tensors.get('model.language_model.norm.weight')!.dtype).toBe('BF16'); // everything else as it was
    const stored = new WeightLoader(ckpt, device); // no format asked: loads in the stored ones
    const onLoad = new WeightLoader(src, device, { quantFormats: { text: 'q4', vision: 'q8' } });
    for (const l of [stored, onLoad]) {
      const [q] = await l.scope('').quantizable(Q_PROJ, [64, 64], 'text');
      const parts = await l.scope('').quantizable(QKV, [96, 32], 'vision', [
        [0, 32],
        [32, 96],
      ]);
      expect((q as QuantizedMatrix).layout.name).toBe('q4');
      expect((parts[1] as QuantizedMatrix).layout.name).toBe('q8');
    }
    const read = async (l: WeightLoader) =>
      (await l.scope('').quantizable(QKV, [96, 32], 'vision', [[32, 96]]))[0] as QuantizedMatrix;
    expect(await (await read(stored)).read()).toEqual(await (await read(onLoad)).read());
    // asking for the stored format again is fine; asking for another is refused, naming the tensor
    await new WeightLoader(ckpt, device, { quantFormats: { text: 'q4' } })
      .scope('')
      .quantizable(Q_PROJ, [64, 64], 'text');
    const e = await rejectionOf(
      new WeightLoader(ckpt, device, { quantFormats: { text: 'q8' } }).scope('').quantizable(Q_PROJ, [64, 64], 'text'),
    );
    expect(e).toBeInstanceOf(CheckpointError);
    expect(e.message).toMatch(
      /tensor 'model\.language_model\.layers\.0\.self_attn\.q_proj\.weight' is stored as q4; it cannot be loaded as q8/,
    );
    stored.dispose();
    onLoad.dispose();
    await Promise.all([src.close(), ckpt.close()]);
  });

  it('a sharded checkpoint keeps its shards, with an index naming the new tensors, and loads', async () => {
    const src = join(tmp, `sharded${nth++}`);
    await mkdir(src);
    for (const f of ['config.json', 'generation_config.json', 'preprocessor_config.json'])
      await copyFile(join(fixture('bf16'), f), join(src, f));
    const ckpt = await Checkpoint.open(fixture('bf16'));
    const all = ckpt.inFileOrder();
    const weightMap: Record<string, string> = {};
    for (const [i, part] of [all.slice(0, 30), all.slice(30)].entries()) {
      const name = `model-0000${i + 1}-of-00002.safetensors`;
      await writeSafetensors(
        join(src, name),
        await Promise.all(
          part.map(async (t) => ({ name: t.name, dtype: t.dtype, shape: t.shape, data: await ckpt.read(t) })),
        ),
      );
      for (const t of part) weightMap[t.name] = name;
    }
    await writeFile(join(src, INDEX_FILE), JSON.stringify({ weight_map: weightMap }));
    await ckpt.close();
    const out = join(tmp, `sharded-q8${nth++}`);
    await quantizeCheckpoint(src, out, { text: 'q8' });
    expect((await readdir(out)).filter((f) => f.endsWith('.safetensors')).sort()).toEqual([
      'model-00001-of-00002.safetensors',
      'model-00002-of-00002.safetensors',
    ]);
    const index = JSON.parse(await readFile(join(out, INDEX_FILE), 'utf8'));
    expect(index.weight_map[Q_PROJ + QWEIGHT]).toBe(weightMap[Q_PROJ]);
    expect(index.weight_map[Q_PROJ]).toBeUndefined();
    const q = await Checkpoint.open(out);
    expect(index.metadata.total_size).toBe(q.totalBytes);
    const w = new WeightLoader(q, device);
    const [m] = await w.scope('').quantizable(Q_PROJ, [64, 64], 'text');
    expect((m as QuantizedMatrix).layout.name).toBe('q8');
    w.dispose();
    await q.close();
  });

  it('refuses an existing output folder, and leaves nothing behind when quantising fails', async () => {
    await expect(quantizeCheckpoint(fixture('bf16'), fixture('f32'), { text: 'q8' })).rejects.toThrow(/already exists/);
    await expect(quantizeCheckpoint(fixture('bf16'), join(tmp, 'x'), {})).rejects.toBeInstanceOf(InputError);
    const v = normal(512 * 64, 1);
    v[100] = Infinity;
    const src = join(tmp, `bad${nth++}`);
    await mkdir(src);
    for (const f of ['config.json', 'generation_config.json', 'preprocessor_config.json'])
      await copyFile(join(fixture('f32'), f), join(src, f));
    await writeSafetensors(join(src, 'model.safetensors'), [
      { name: 'lm_head.weight', dtype: 'F32', shape: [512, 64], data: v },
    ]);
    const out = join(tmp, `bad-out${nth++}`);
    await expect(quantizeCheckpoint(src, out, { text: 'q4' })).rejects.toThrow(
      /quantising 'lm_head\.weight' to q4: row 1 has a non-finite weight \(Infinity\) at column 36/,
    );
    expect((await readdir(tmp)).filter((n) => n.startsWith('bad-out'))).toEqual([]);
    await expect(stat(out)).rejects.toThrow();
  });
});

describe('formats refused with the tensor named', () => {
  const A = 'a.weight';
  const B = 'b.weight';
  async function quantised(name: string, format: QuantFormat): Promise<TensorData[]> {
    const layout = QUANT_FORMATS[format];
    const q = quantizeRows(layout, normal(4 * 64, 1), 4, 64, name);
    return [
      { name: name + QWEIGHT, dtype: 'U8', shape: [4, rowBytes(layout, 64).data], data: new Uint8Array(q.data.buffer) },
      { name: name + QSCALES, dtype: 'F16', shape: [4, rowBytes(layout, 64).scales / 2], data: q.scales },
    ];
  }
  async function loadBoth(
    tensors: TensorData[],
    metadata: Record<string, string>,
    formats?: Record<string, QuantFormat>,
  ): Promise<Error> {
    const ckpt = await Checkpoint.open(await folder(tensors, metadata));
    const before = device.pool.stats.bytesInUse;
    const w = new WeightLoader(ckpt, device, { quantFormats: formats });
    const e = await rejectionOf(
      (async () => {
        await w.scope('').quantizable(A, [4, 64], 'text');
        await w.scope('').quantizable(B, [4, 64], 'text');
      })(),
    );
    w.dispose();
    expect(device.pool.stats.bytesInUse).toBe(before);
    await ckpt.close();
    return e;
  }

  it('two formats in one group', async () => {
    const e = await loadBoth([...(await quantised(A, 'q8')), ...(await quantised(B, 'q4'))], {
      [formatKey(A)]: 'q8',
      [formatKey(B)]: 'q4',
    });
    expect(e).toBeInstanceOf(CheckpointError);
    expect(e.message).toMatch(
      /tensor 'b\.weight' is q4 but 'a\.weight' is q8: the text weights of a checkpoint must share one format/,
    );
    const f = await loadBoth(
      [...(await quantised(A, 'q4')), { name: B, dtype: 'F32', shape: [4, 64], data: normal(256, 2) }],
      { [formatKey(A)]: 'q4' },
    );
    expect(f.message).toMatch(/tensor 'b\.weight' is unquantised but 'a\.weight' is q4/);
  });

  it('an unknown or missing format, half a pair, a wrong shape, a weight stored twice', async () => {
    expect((await loadBoth(await quantised(A, 'q4'), { [formatKey(A)]: 'q3' })).message).toMatch(
      /tensor 'a\.weight\.qweight' is in quantisation format 'q3', which this runtime does not know \(known: q8, q4\)/,
    );
    expect((await loadBoth(await quantised(A, 'q4'), {})).message).toMatch(
      /tensor 'a\.weight\.qweight' has no format in the file's metadata \(expected "quant\.a\.weight"/,
    );
    expect((await loadBoth((await quantised(A, 'q4')).slice(0, 1), { [formatKey(A)]: 'q4' })).message).toMatch(
      /tensor 'a\.weight\.qweight' has no 'a\.weight\.qscales' beside it/,
    );
    expect((await loadBoth(await quantised(A, 'q8'), { [formatKey(A)]: 'q4' })).message).toMatch(
      /tensor 'a\.weight\.qweight': expected U8 \[4, 32\], found U8 \[4, 64\]/,
    );
    const twice = [
      ...(await quantised(A, 'q8')),
      { name: A, dtype: 'F32' as const, shape: [4, 64], data: normal(256, 2) },
    ];
    expect((await loadBoth(twice, { [formatKey(A)]: 'q8' })).message).toMatch(/tensor 'a\.weight' is stored twice/);
    expect(await loadBoth(await quantised(A, 'q4'), { [formatKey(A)]: 'q3' })).toBeInstanceOf(CheckpointError);
  });
});
