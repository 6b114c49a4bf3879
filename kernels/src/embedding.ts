// Embedding gather (embedding.wgsl): rows of a [V, D] table, possibly split into row chunks, picked by token ids.

import { ChunkedTensor, type Graph, InputError, type Tensor, UniformLayout } from '@glm4v/core';
import EMBEDDING_WGSL from './embedding.wgsl.js';
import { type ActDType, type WeightDType, assertDType, assertShape, checkActDType, prelude, variantTag } from './prelude.js';
import { grid1d, rowWorkgroupSize } from './grid.js';
import { ROWS_WGSL, checkRows } from './rows.js';

const PARAMS = new UniformLayout('rows: u32, cols: u32, row_start: u32, chunk_rows: u32, vocab: u32, nan_bits: u32, indexed: u32, ids_len: u32');

export interface EmbeddingOptions {
  /** Write here: [S, D], f32 or f16 (default a new f32 tensor). */
  out?: Tensor;
  /**
   * A batched decode step's rows table i32 [S, ROW_FIELDS] (rows.ts): output row r takes the id at ids[slot_r]
   * (ids then holds one token per slot, each written by the previous step's sampler).
   */
  rows?: Tensor;
}

/**
 * Gathers rows of `table` [V, D] (f32, f16 or bf16; a ChunkedTensor split by rows, or one Tensor) by `ids`
 * (i32 or u32 [S], possibly written by the GPU, e.g. the sampler) into out [S, D] (f32 unless `out` is f16); with
 * `rows`, output row r takes ids[slot_r]. An id outside [0, V) (or a slot outside ids) gives a row of NaN: check
 * ids on the host with checkTokenIds() where they are known. (nn.Embedding: model.language_model.embed_tokens)
 */
export function embedding(g: Graph, table: ChunkedTensor | Tensor, ids: Tensor, opts: EmbeddingOptions = {}): Tensor {
  const m = table instanceof ChunkedTensor ? table : ChunkedTensor.single(table);
  assertDType(`embedding table '${m.label}'`, m.dtype, ['f32', 'f16', 'bf16']);
  checkActDType(g.device, m.dtype, `embedding table '${m.label}'`);
  if (m.shape.length !== 2) throw new InputError(`embedding table '${m.label}' has shape [${m.shape.join(', ')}]; expected [V, D]`);
  assertDType(`embedding ids '${ids.label}'`, ids.dtype, ['i32', 'u32']);
  if (ids.shape.length !== 1) throw new InputError(`embedding ids '${ids.label}' has shape [${ids.shape.join(', ')}]; expected [S]`);
  const [vocab, cols] = m.shape;
  // Every chunk is checked before anything is recorded, so an error leaves the graph as it was.
  for (const c of m.chunks) assertShape(`embedding table chunk '${c.tensor.label}'`, c.tensor.shape, [c.rows, cols]);
  const index = opts.rows;
  const rows = index ? index.shape[0] : ids.shape[0];
  if (index) checkRows('embedding', index, rows);
  const y = opts.out ?? g.tensor('f32', [rows, cols], 'embedding_out');
  assertShape(`embedding output '${y.label}'`, y.shape, [rows, cols]);
  assertDType(`embedding output '${y.label}'`, y.dtype, ['f32', 'f16']);
  const act = y.dtype as ActDType;
  checkActDType(g.device, act, 'embedding');
  const wd = m.dtype as WeightDType;
  const code = prelude({ act, weights: { w: wd } }) + ROWS_WGSL + EMBEDDING_WGSL;
  // without a rows table, a one-word stand-in is bound (the kernel names the binding either way)
  const rowsBinding = index ?? g.tensor('i32', [1], 'embedding_no_rows');
  const WG = rowWorkgroupSize(cols / 2); // one invocation per pair of columns
  m.chunks.forEach((c, i) => {
    g.dispatch({
      kernel: { label: `embedding_${variantTag(wd, act)}`, code, constants: { WG, FIRST: i === 0 ? 1 : 0, PAIRS: cols % 2 === 0 ? 1 : 0 } },
      uniforms: { layout: PARAMS, values: { rows, cols, row_start: c.rowStart, chunk_rows: c.rows, vocab, nan_bits: 0x7fc00000, indexed: index ? 1 : 0, ids_len: ids.shape[0] } },
      inputs: [ids, rowsBinding, c.tensor],
      outputs: [y],
      workgroups: grid1d(g.device, rows),
    });
  });
  return y;
}

/** Throws InputError naming the first id outside [0, vocab) (for ids known on the host, before upload). */
export function checkTokenIds(ids: ArrayLike<number>, vocab: number, what = 'token ids'): void {
  for (let i = 0; i < ids.length; i++) {
    const id = ids[i];
    if (!Number.isInteger(id) || id < 0 || id >= vocab) throw new InputError(`${what}: id ${id} at position ${i} is outside the vocabulary [0, ${vocab})`);
  }
}
