// Embedding gather (embedding.wgsl, embedding_quant.wgsl): rows of a [V, D] table, possibly split into row chunks
// and possibly block-quantised (quant.ts), picked by token ids, or (a batched decode step) by each row's slot.

import { ChunkedTensor, type Graph, InputError, type Tensor, UniformLayout } from '@glm4v/core';
import EMBEDDING_WGSL from './embedding.wgsl.js';
import EMBEDDING_QUANT_WGSL from './embedding_quant.wgsl.js';
import {
  type ActDType,
  type WeightDType,
  assertDType,
  assertShape,
  checkActDType,
  prelude,
  variantTag,
} from './prelude.js';
import { grid1d, rowWorkgroupSize } from './grid.js';
import { QuantizedMatrix, quantReader, rowBytes } from './quant.js';
import { ROWS_WGSL, checkRows } from './rows.js';

/** The uniform fields, the row width named `cols`, or `K` where quant.ts's reader reads it (the same slot). */
const fields = (width: string) =>
  `rows: u32, ${width}: u32, row_start: u32, chunk_rows: u32, vocab: u32, nan_bits: u32, indexed: u32, ids_len: u32`;
const PARAMS = new UniformLayout(fields('cols'));
const QUANT_PARAMS = new UniformLayout(fields('K'));
const NAN_BITS = 0x7fc00000;

/** The uniform block, the ids and rows bindings and id_of() of both kernels (each declares its table and out after). */
const header = (width: string) =>
  ROWS_WGSL +
  `struct Params { ${fields(width)} }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> ids: array<i32>;
@group(0) @binding(2) var<storage, read> rows: array<i32>;
// The id of output row s: ids[s], or ids[slot_s] with a rows table (-1, out of range, for a slot outside ids).
fn id_of(s: u32) -> i32 {
  if (p.indexed == 0u) { return ids[s]; }
  let slot = rows[s * ROW_FIELDS + ROW_SLOT];
  if (slot < 0 || u32(slot) >= p.ids_len) { return -1; }
  return ids[slot];
}
`;

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
 * Gathers rows of `table` [V, D] (f32, f16 or bf16; a ChunkedTensor split by rows, or one Tensor; or a quantised
 * matrix, dequantised on the way) by `ids` (i32 or u32 [S], possibly written by the GPU, e.g. the sampler) into
 * out [S, D] (f32 unless `out` is f16); with `rows`, output row r takes ids[slot_r]. An id outside [0, V) (or a
 * slot outside ids) gives a row of NaN: check ids on the host with checkTokenIds() where they are known.
 * (nn.Embedding: model.language_model.embed_tokens)
 */
export function embedding(
  g: Graph,
  table: ChunkedTensor | Tensor | QuantizedMatrix,
  ids: Tensor,
  opts: EmbeddingOptions = {},
): Tensor {
  if (table instanceof QuantizedMatrix) return embeddingQuant(g, table, ids, opts);
  const m = table instanceof ChunkedTensor ? table : ChunkedTensor.single(table);
  assertDType(`embedding table '${m.label}'`, m.dtype, ['f32', 'f16', 'bf16']);
  checkActDType(g.device, m.dtype, `embedding table '${m.label}'`);
  if (m.shape.length !== 2)
    throw new InputError(`embedding table '${m.label}' has shape [${m.shape.join(', ')}]; expected [V, D]`);
  const [vocab, cols] = m.shape;
  // Every chunk is checked before anything is recorded, so an error leaves the graph as it was.
  for (const c of m.chunks) assertShape(`embedding table chunk '${c.tensor.label}'`, c.tensor.shape, [c.rows, cols]);
  const io = checkIdsAndOut(g, ids, cols, opts);
  const wd = m.dtype as WeightDType;
  const code = prelude({ act: io.act, weights: { w: wd } }) + header('cols') + EMBEDDING_WGSL;
  const WG = rowWorkgroupSize(cols / 2); // one invocation per pair of columns
  m.chunks.forEach((c, i) => {
    g.dispatch({
      kernel: {
        label: `embedding_${variantTag(wd, io.act)}`,
        code,
        constants: { WG, FIRST: i === 0 ? 1 : 0, PAIRS: cols % 2 === 0 ? 1 : 0 },
      },
      uniforms: { layout: PARAMS, values: { ...io.values, row_start: c.rowStart, chunk_rows: c.rows, vocab } },
      inputs: [ids, io.rowsBinding, c.tensor],
      outputs: [io.y],
      workgroups: grid1d(g.device, io.rows),
    });
  });
  return io.y;
}

/** embedding() over a quantised table: one dispatch per chunk of codes and scales. */
function embeddingQuant(g: Graph, m: QuantizedMatrix, ids: Tensor, opts: EmbeddingOptions): Tensor {
  const [vocab, K] = m.shape;
  const b = rowBytes(m.layout, K);
  for (const c of m.chunks) {
    assertShape(`embedding table chunk '${c.data.label}'`, c.data.shape, [c.rows, b.data / 4]);
    assertShape(`embedding table chunk '${c.scales.label}'`, c.scales.shape, [c.rows, b.scales / 2]);
  }
  const io = checkIdsAndOut(g, ids, K, opts);
  const code = prelude({ act: io.act }) + quantReader(m.layout, { dequant: true }) + header('K') + EMBEDDING_QUANT_WGSL;
  const WG = rowWorkgroupSize(Math.ceil(K / 8)); // one invocation per 8 weights
  const { cols, ...others } = io.values;
  const quantValues = { ...others, K: cols };
  m.chunks.forEach((c, i) => {
    g.dispatch({
      kernel: { label: `embedding_${m.layout.name}w_${io.act}a`, code, constants: { WG, FIRST: i === 0 ? 1 : 0 } },
      uniforms: { layout: QUANT_PARAMS, values: { ...quantValues, row_start: c.rowStart, chunk_rows: c.rows, vocab } },
      inputs: [ids, io.rowsBinding, c.data, c.scales],
      outputs: [io.y],
      workgroups: grid1d(g.device, io.rows),
    });
  });
  return io.y;
}

/** The ids, the rows table and the output checked; the uniforms they give; the rows binding (a stand-in without one). */
function checkIdsAndOut(g: Graph, ids: Tensor, cols: number, opts: EmbeddingOptions) {
  assertDType(`embedding ids '${ids.label}'`, ids.dtype, ['i32', 'u32']);
  if (ids.shape.length !== 1)
    throw new InputError(`embedding ids '${ids.label}' has shape [${ids.shape.join(', ')}]; expected [S]`);
  const index = opts.rows;
  const rows = index ? index.shape[0] : ids.shape[0];
  if (index) checkRows('embedding', index, rows);
  const y = opts.out ?? g.tensor('f32', [rows, cols], 'embedding_out');
  assertShape(`embedding output '${y.label}'`, y.shape, [rows, cols]);
  assertDType(`embedding output '${y.label}'`, y.dtype, ['f32', 'f16']);
  const act = y.dtype as ActDType;
  checkActDType(g.device, act, 'embedding');
  // without a rows table, a one-word stand-in is bound (the kernels name the binding either way)
  const rowsBinding = index ?? g.tensor('i32', [1], 'embedding_no_rows');
  const values = { rows, cols, nan_bits: NAN_BITS, indexed: index ? 1 : 0, ids_len: ids.shape[0] };
  return { rows, y, act, rowsBinding, values };
}

/** Throws InputError naming the first id outside [0, vocab) (for ids known on the host, before upload). */
export function checkTokenIds(ids: ArrayLike<number>, vocab: number, what = 'token ids'): void {
  for (let i = 0; i < ids.length; i++) {
    const id = ids[i];
    if (!Number.isInteger(id) || id < 0 || id >= vocab)
      throw new InputError(`${what}: id ${id} at position ${i} is outside the vocabulary [0, ${vocab})`);
  }
}
