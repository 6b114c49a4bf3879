// Embedding gather (embedding.wgsl, embedding_quant.wgsl): rows of a [V, D] table, possibly split into row chunks
// and possibly block-quantised (quant.ts), picked by token ids.

import { ChunkedTensor, type Graph, InputError, type Tensor, UniformLayout } from '@glm4v/core';
import EMBEDDING_WGSL from './embedding.wgsl.js';
import EMBEDDING_QUANT_WGSL from './embedding_quant.wgsl.js';
import { type ActDType, type WeightDType, assertDType, assertShape, checkActDType, prelude, variantTag } from './prelude.js';
import { grid1d, rowWorkgroupSize } from './grid.js';
import { QuantizedMatrix, quantReader, rowBytes } from './quant.js';

const PARAMS = new UniformLayout('rows: u32, cols: u32, row_start: u32, chunk_rows: u32, vocab: u32, nan_bits: u32');
const QUANT_PARAMS = new UniformLayout('rows: u32, K: u32, row_start: u32, chunk_rows: u32, vocab: u32, nan_bits: u32');
const NAN_BITS = 0x7fc00000;

/**
 * Gathers rows of `table` [V, D] (f32, f16 or bf16; a ChunkedTensor split by rows, or one Tensor; or a quantised
 * matrix, dequantised on the way) by `ids` (i32 or u32 [S], possibly written by the GPU, e.g. the sampler) into
 * out [S, D] (f32 unless `out` is f16). An id outside [0, V) gives a row of NaN: check ids on the host with
 * checkTokenIds() where they are known. (nn.Embedding: model.language_model.embed_tokens)
 */
export function embedding(g: Graph, table: ChunkedTensor | Tensor | QuantizedMatrix, ids: Tensor, out?: Tensor): Tensor {
  if (table instanceof QuantizedMatrix) return embeddingQuant(g, table, ids, out);
  const m = table instanceof ChunkedTensor ? table : ChunkedTensor.single(table);
  assertDType(`embedding table '${m.label}'`, m.dtype, ['f32', 'f16', 'bf16']);
  checkActDType(g.device, m.dtype, `embedding table '${m.label}'`);
  if (m.shape.length !== 2) throw new InputError(`embedding table '${m.label}' has shape [${m.shape.join(', ')}]; expected [V, D]`);
  const [vocab, cols] = m.shape;
  // Every chunk is checked before anything is recorded, so an error leaves the graph as it was.
  for (const c of m.chunks) assertShape(`embedding table chunk '${c.tensor.label}'`, c.tensor.shape, [c.rows, cols]);
  const { rows, y, act } = checkIdsAndOut(g, ids, cols, out);
  const wd = m.dtype as WeightDType;
  const code = prelude({ act, weights: { w: wd } }) + EMBEDDING_WGSL;
  const WG = rowWorkgroupSize(cols / 2); // one invocation per pair of columns
  m.chunks.forEach((c, i) => {
    g.dispatch({
      kernel: { label: `embedding_${variantTag(wd, act)}`, code, constants: { WG, FIRST: i === 0 ? 1 : 0, PAIRS: cols % 2 === 0 ? 1 : 0 } },
      uniforms: { layout: PARAMS, values: { rows, cols, row_start: c.rowStart, chunk_rows: c.rows, vocab, nan_bits: NAN_BITS } },
      inputs: [ids, c.tensor],
      outputs: [y],
      workgroups: grid1d(g.device, rows),
    });
  });
  return y;
}

/** embedding() over a quantised table: one dispatch per chunk of codes and scales. */
function embeddingQuant(g: Graph, m: QuantizedMatrix, ids: Tensor, out: Tensor | undefined): Tensor {
  const [vocab, K] = m.shape;
  const b = rowBytes(m.layout, K);
  for (const c of m.chunks) {
    assertShape(`embedding table chunk '${c.data.label}'`, c.data.shape, [c.rows, b.data / 4]);
    assertShape(`embedding table chunk '${c.scales.label}'`, c.scales.shape, [c.rows, b.scales / 2]);
  }
  const { rows, y, act } = checkIdsAndOut(g, ids, K, out);
  const code = prelude({ act }) + quantReader(m.layout, { dequant: true }) + EMBEDDING_QUANT_WGSL;
  const WG = rowWorkgroupSize(Math.ceil(K / 8)); // one invocation per 8 weights
  m.chunks.forEach((c, i) => {
    g.dispatch({
      kernel: { label: `embedding_${m.layout.name}w_${act}a`, code, constants: { WG, FIRST: i === 0 ? 1 : 0 } },
      uniforms: { layout: QUANT_PARAMS, values: { rows, K, row_start: c.rowStart, chunk_rows: c.rows, vocab, nan_bits: NAN_BITS } },
      inputs: [ids, c.data, c.scales],
      outputs: [y],
      workgroups: grid1d(g.device, rows),
    });
  });
  return y;
}

function checkIdsAndOut(g: Graph, ids: Tensor, cols: number, out: Tensor | undefined): { rows: number; y: Tensor; act: ActDType } {
  assertDType(`embedding ids '${ids.label}'`, ids.dtype, ['i32', 'u32']);
  if (ids.shape.length !== 1) throw new InputError(`embedding ids '${ids.label}' has shape [${ids.shape.join(', ')}]; expected [S]`);
  const rows = ids.shape[0];
  const y = out ?? g.tensor('f32', [rows, cols], 'embedding_out');
  assertShape(`embedding output '${y.label}'`, y.shape, [rows, cols]);
  assertDType(`embedding output '${y.label}'`, y.dtype, ['f32', 'f16']);
  const act = y.dtype as ActDType;
  checkActDType(g.device, act, 'embedding');
  return { rows, y, act };
}

/** Throws InputError naming the first id outside [0, vocab) (for ids known on the host, before upload). */
export function checkTokenIds(ids: ArrayLike<number>, vocab: number, what = 'token ids'): void {
  for (let i = 0; i < ids.length; i++) {
    const id = ids[i];
    if (!Number.isInteger(id) || id < 0 || id >= vocab) throw new InputError(`${what}: id ${id} at position ${i} is outside the vocabulary [0, ${vocab})`);
  }
}
