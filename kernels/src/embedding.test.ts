import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ChunkedTensor, Device, Graph, InputError, Tensor } from '@glm4v/core';
import { asStored, expectClose, normal, poisoned, rng, TOLERANCE } from '@glm4v/core/testing';
import { checkTokenIds, embedding } from './embedding.js';
import { ROW_FIELDS, rowsTable } from './rows.js';
import { QUANT_FORMATS, QuantizedMatrix, rowBytes } from './quant.js';
import { dequantizeRows, quantizeRows } from './quantize.js';

let device: Device;
beforeAll(async () => {
  device = await Device.create();
});
afterAll(() => device?.dispose());

/** float64 reference: row ids[s] of the table, NaN for ids outside [0, V). */
function gatherRef(table: Float64Array, vocab: number, cols: number, ids: ArrayLike<number>): Float64Array {
  const out = new Float64Array(ids.length * cols);
  for (let s = 0; s < ids.length; s++) {
    const id = ids[s];
    for (let c = 0; c < cols; c++) out[s * cols + c] = id >= 0 && id < vocab ? table[id * cols + c] : NaN;
  }
  return out;
}

/** Exact comparison (a gather copies values), NaN where NaN is expected. */
function expectRows(got: ArrayLike<number>, ref: Float64Array, what: string): void {
  expect(got.length, what).toBe(ref.length);
  for (let i = 0; i < ref.length; i++) {
    if (Number.isNaN(ref[i]) ? !Number.isNaN(got[i]) : got[i] !== ref[i]) {
      throw new Error(`${what}: element ${i} is ${got[i]}, expected ${ref[i]}`);
    }
  }
}

/** Ids that hit both sides of every chunk boundary, the first and last rows, repeats and random rows. */
function boundaryIds(vocab: number, perChunk: number, count: number, seed: number): number[] {
  const ids: number[] = [0, vocab - 1];
  for (let r = perChunk; r < vocab; r += perChunk) ids.push(r - 1, r);
  ids.push(ids[2] ?? 0);
  const r = rng(seed);
  while (ids.length < count) ids.push(Math.floor(r() * vocab));
  return ids.slice(0, count);
}

describe('embedding', () => {
  const VOCAB = 37;
  const PER_CHUNK = 5; // forced small chunks: 8 of them, the last one 2 rows
  for (const wd of ['f32', 'f16', 'bf16'] as const) {
    for (const cols of [1, 3, 17, 130]) {
      for (const rows of [1, 3, 17, 127]) {
        it(`${wd} table [${VOCAB}, ${cols}] in chunks of ${PER_CHUNK} rows, ${rows} ids`, async (ctx) => {
          if (wd === 'f16' && !device.has('shader-f16')) return ctx.skip('the adapter lacks shader-f16');
          const data = asStored(wd, normal(VOCAB * cols, cols * 7 + rows));
          const rowBytes = cols * (wd === 'f32' ? 4 : 2);
          const table = await ChunkedTensor.fromArray(
            device,
            wd,
            [VOCAB, cols],
            data,
            'embed_tokens.weight',
            PER_CHUNK * rowBytes,
          );
          expect(table.chunks.length).toBe(Math.ceil(VOCAB / PER_CHUNK));
          const idList = boundaryIds(VOCAB, PER_CHUNK, rows, rows);
          const ids = await Tensor.fromArray(device, 'i32', [rows], Int32Array.from(idList), 'input_ids');
          const out = await poisoned(device, 'f32', [rows, cols]);
          const g = new Graph(device);
          embedding(g, table, ids, { out });
          await g.run();
          expectRows(
            await out.read(),
            gatherRef(data, VOCAB, cols, idList),
            `embedding ${wd} [${VOCAB}, ${cols}] × ${rows}`,
          );
          g.dispose();
          table.dispose();
          ids.dispose();
          out.dispose();
        });
      }
    }
  }

  for (const idType of ['i32', 'u32'] as const) {
    it(`${idType} ids outside [0, V) give NaN rows; the others are untouched by them`, async () => {
      const [vocab, cols] = [23, 6];
      const data = asStored('bf16', normal(vocab * cols, 3));
      const table = await ChunkedTensor.fromArray(device, 'bf16', [vocab, cols], data, 'embed', 4 * cols * 2);
      const idList =
        idType === 'i32' ? [5, -1, vocab, 0, 2 ** 31 - 1, vocab - 1] : [5, vocab, 2 ** 31, 0, 2 ** 32 - 1, vocab - 1];
      const ids = await Tensor.fromArray(
        device,
        idType,
        [idList.length],
        idType === 'i32' ? Int32Array.from(idList) : Uint32Array.from(idList),
        'ids',
      );
      const out = await poisoned(device, 'f32', [idList.length, cols]);
      // poisoned() is NaN already: zero it so the NaN rows are the kernel's doing
      out.write(new Float32Array(idList.length * cols));
      const g = new Graph(device);
      embedding(g, table, ids, { out });
      await g.run();
      expectRows(
        await out.read(),
        gatherRef(
          data,
          vocab,
          cols,
          idList.map((v) => (v >= 2 ** 31 ? -1 : v)),
        ),
        `embedding ${idType} out of range`,
      );
      g.dispose();
      table.dispose();
      ids.dispose();
      out.dispose();
    });
  }

  it('f16 output, one unchunked tensor as the table', async (ctx) => {
    if (!device.has('shader-f16')) return ctx.skip('the adapter lacks shader-f16');
    const [vocab, cols, rows] = [11, 17, 7];
    const data = asStored('f16', normal(vocab * cols, 9));
    const table = await Tensor.fromArray(device, 'f16', [vocab, cols], data, 'embed');
    const idList = [10, 0, 3, 3, -4, 9, 1];
    const ids = await Tensor.fromArray(device, 'i32', [rows], Int32Array.from(idList), 'ids');
    const out = await poisoned(device, 'f16', [rows, cols]);
    const g = new Graph(device);
    embedding(g, table, ids, { out });
    await g.run();
    expectRows(await out.read(), gatherRef(data, vocab, cols, idList), 'embedding f16 out');
    g.dispose();
    for (const t of [table, ids, out]) t.dispose();
  });

  it('more than 65535 ids (a 2-D grid of workgroups)', async () => {
    const [vocab, cols, rows] = [1000, 2, 70_000];
    const data = asStored('f32', normal(vocab * cols, 4));
    const table = await ChunkedTensor.fromArray(device, 'f32', [vocab, cols], data, 'embed', 500 * cols * 4);
    const r = rng(8);
    const idList = Int32Array.from({ length: rows }, () => Math.floor(r() * vocab));
    const ids = await Tensor.fromArray(device, 'i32', [rows], idList, 'ids');
    const out = await poisoned(device, 'f32', [rows, cols]);
    const g = new Graph(device);
    embedding(g, table, ids, { out });
    await g.run();
    expectClose(await out.read(), gatherRef(data, vocab, cols, idList), TOLERANCE.f32, 'embedding 70000 ids');
    g.dispose();
    table.dispose();
    ids.dispose();
    out.dispose();
  });

  it("a rows table picks each row's id by its slot (a batched decode step); slots outside ids give NaN rows", async () => {
    const [vocab, cols] = [29, 10];
    const data = asStored('bf16', normal(vocab * cols, 12));
    const table = await ChunkedTensor.fromArray(device, 'bf16', [vocab, cols], data, 'embed', 6 * cols * 2);
    const tokens = [4, 28, 0, 17, 9]; // one per slot
    const ids = await Tensor.fromArray(device, 'u32', [tokens.length], Uint32Array.from(tokens), 'tokens');
    const slots = [3, 0, 4, 1, 7];
    const rows = await Tensor.fromArray(
      device,
      'i32',
      [slots.length, ROW_FIELDS],
      rowsTable(slots.map((slot, i) => ({ slot, pos: 100 + i, ropePos: 200 + i, step: 5 }))),
      'rows',
    );
    const out = await poisoned(device, 'f32', [slots.length, cols]);
    out.write(new Float32Array(slots.length * cols));
    const g = new Graph(device);
    embedding(g, table, ids, { out, rows });
    await g.run();
    expectRows(
      await out.read(),
      gatherRef(
        data,
        vocab,
        cols,
        slots.map((s) => tokens[s] ?? -1),
      ),
      'embedding by slot',
    );
    g.dispose();
    for (const t of [table, ids, rows, out]) t.dispose();
  });

  it('checkTokenIds names the first bad id', () => {
    expect(() => checkTokenIds([1, 2, 151552], 151552, 'prompt ids')).toThrow(
      /prompt ids: id 151552 at position 2.*\[0, 151552\)/,
    );
    expect(() => checkTokenIds([0, -1], 10)).toThrow(InputError);
    expect(() => checkTokenIds([0, 9], 10)).not.toThrow();
  });

  it('rejects bad ids and output shapes, naming the tensor', async () => {
    const table = await Tensor.empty(device, 'bf16', [10, 4], 'embed_tokens.weight');
    const ids = await Tensor.empty(device, 'f32', [3], 'input_ids');
    const ids2 = await Tensor.empty(device, 'i32', [3], 'input_ids');
    const out = await Tensor.empty(device, 'f32', [3, 5], 'inputs_embeds');
    expect(() => embedding(new Graph(device), table, ids)).toThrow(/input_ids.*f32/);
    expect(() => embedding(new Graph(device), table, ids2, { out })).toThrow(/inputs_embeds.*\[3, 5\].*\[3, 4\]/);
    for (const t of [table, ids, ids2, out]) t.dispose();
  });

  it('checks every chunk before recording any dispatch', async () => {
    const good = await Tensor.empty(device, 'f32', [5, 4], 'embed[0:5]');
    const bad = await Tensor.empty(device, 'f32', [5, 3], 'embed[5:10]');
    const table = new ChunkedTensor(
      'f32',
      [10, 4],
      [
        { tensor: good, rowStart: 0, rows: 5 },
        { tensor: bad, rowStart: 5, rows: 5 },
      ],
      'embed',
    );
    const ids = await Tensor.empty(device, 'i32', [3], 'input_ids');
    const g = new Graph(device);
    expect(() => embedding(g, table, ids)).toThrow(/embed\[5:10\].*\[5, 3\].*\[5, 4\]/);
    expect(g.stats.dispatches).toBe(0);
    g.dispose();
    for (const t of [good, bad, ids]) t.dispose();
  });

  for (const format of ['q8', 'q4'] as const) {
    it(`${format} table: the dequantised rows rounded once to f32 (K a multiple of the block and not), chunks, NaN for bad ids, by slot`, async () => {
      const layout = QUANT_FORMATS[format];
      for (const cols of [7, 64, 100]) {
        const vocab = 37;
        const q = quantizeRows(layout, normal(vocab * cols, cols), vocab, cols, 'embed');
        const data = dequantizeRows(layout, q, vocab, cols);
        const table = await QuantizedMatrix.fromHost(
          device,
          layout,
          [vocab, cols],
          q,
          'embed_tokens.weight',
          5 * rowBytes(layout, cols).data,
        );
        expect(table.chunks.length).toBe(8);
        const idList = [...boundaryIds(vocab, 5, 17, cols), -1, vocab];
        const ids = await Tensor.fromArray(device, 'i32', [idList.length], Int32Array.from(idList), 'input_ids');
        const out = await poisoned(device, 'f32', [idList.length, cols]);
        out.write(new Float32Array(idList.length * cols)); // the NaN rows must be the kernel's doing
        const g = new Graph(device);
        embedding(g, table, ids, { out });
        // a batched decode step's rows: each row the id of its slot, a slot outside ids a NaN row
        const slots = [2, 0, idList.length + 1];
        const rows = await Tensor.fromArray(
          device,
          'i32',
          [slots.length, ROW_FIELDS],
          rowsTable(slots.map((slot) => ({ slot, pos: 0, ropePos: 0, step: 0 }))),
          'rows',
        );
        const bySlot = await poisoned(device, 'f32', [slots.length, cols]);
        bySlot.write(new Float32Array(slots.length * cols));
        embedding(g, table, ids, { out: bySlot, rows });
        await g.run();
        // one fma: d·(u − offset) + m rounded once to f32
        expectRows(
          await out.read(),
          gatherRef(data.map(Math.fround), vocab, cols, idList),
          `embedding ${format} [${vocab}, ${cols}]`,
        );
        expectRows(
          await bySlot.read(),
          gatherRef(
            data.map(Math.fround),
            vocab,
            cols,
            slots.map((sl) => idList[sl] ?? -1),
          ),
          `embedding ${format} by slot`,
        );
        g.dispose();
        for (const t of [table, ids, out, rows, bySlot]) t.dispose();
      }
    });
  }
});
