// Row concatenation of weights at load: matrices of one kind stacked into one [Σ N_i, K] matrix (the decoder's
// q, k and v projections become one q|k|v weight, read by one matvec per token), and vectors joined end to end
// (their biases). Done with GPU buffer copies, so quantised codes and scales move as they are: a fused quantised
// weight dequantises exactly as its parts did.

import { ChunkedTensor, Graph, InputError, Tensor, itemSize } from '@glm4v/core';
import type { LinearWeight } from './matmul.js';
import { QuantizedMatrix, rowBytes } from './quant.js';

/** A row-chunked buffer set: each piece holds rows [rowStart, rowStart + rows) of its matrix. */
interface Piece {
  tensor: Tensor;
  rowStart: number;
  rows: number;
}

/** Records the copies of every source matrix's rows (stacked in order) into the destination pieces. */
function copyRows(g: Graph, sources: readonly (readonly Piece[])[], dst: readonly Piece[], bytesPerRow: number): void {
  let base = 0;
  for (const pieces of sources) {
    for (const s of pieces) {
      const a = base + s.rowStart;
      const b = a + s.rows;
      for (const d of dst) {
        const lo = Math.max(a, d.rowStart);
        const hi = Math.min(b, d.rowStart + d.rows);
        if (lo < hi)
          g.copy(s.tensor, d.tensor, (hi - lo) * bytesPerRow, (lo - a) * bytesPerRow, (lo - d.rowStart) * bytesPerRow);
      }
    }
    base += pieces.reduce((n, p) => n + p.rows, 0);
  }
}

/** Runs the copies into `out`; `out` is freed if they fail. */
async function runCopies<T extends { dispose(): void }>(g: Graph, out: T): Promise<T> {
  try {
    await g.run();
    return out;
  } catch (e) {
    out.dispose();
    throw e;
  } finally {
    g.dispose();
  }
}

function checkSameWidth(parts: readonly LinearWeight[], label: string): number {
  const k = parts[0].shape[1];
  for (const p of parts) {
    if (p.shape.length !== 2 || p.shape[1] !== k)
      throw new InputError(`concatRows '${label}': '${p.label}' is [${p.shape.join(', ')}]; expected [N, ${k}]`);
  }
  return k;
}

/**
 * The rows of `parts` stacked into one new matrix [Σ N_i, K] of the same kind: all ChunkedTensors of one dtype, or
 * all QuantizedMatrices of one format. The parts are left as they are (the caller frees them).
 */
export async function concatRows(parts: readonly LinearWeight[], label: string): Promise<LinearWeight> {
  if (parts.length === 0) throw new InputError(`concatRows '${label}': no matrices`);
  const k = checkSameWidth(parts, label);
  const n = parts.reduce((s, p) => s + p.shape[0], 0);
  const first = parts[0];
  if (first instanceof QuantizedMatrix) {
    const qs = parts.map((p) => {
      if (!(p instanceof QuantizedMatrix) || p.layout.name !== first.layout.name)
        throw new InputError(
          `concatRows '${label}': '${p.label}' is not a ${first.layout.name} matrix like '${first.label}'`,
        );
      return p;
    });
    const device = first.chunks[0].data.device;
    const out = await QuantizedMatrix.empty(device, first.layout, [n, k], label);
    const b = rowBytes(first.layout, k);
    const g = new Graph(device, `concat:${label}`);
    copyRows(
      g,
      qs.map((q) => q.chunks.map((c) => ({ tensor: c.data, rowStart: c.rowStart, rows: c.rows }))),
      out.chunks.map((c) => ({ tensor: c.data, rowStart: c.rowStart, rows: c.rows })),
      b.data,
    );
    copyRows(
      g,
      qs.map((q) => q.chunks.map((c) => ({ tensor: c.scales, rowStart: c.rowStart, rows: c.rows }))),
      out.chunks.map((c) => ({ tensor: c.scales, rowStart: c.rowStart, rows: c.rows })),
      b.scales,
    );
    return runCopies(g, out);
  }
  const ms = parts.map((p) => {
    const m = p instanceof Tensor ? ChunkedTensor.single(p) : p;
    if (!(m instanceof ChunkedTensor) || m.dtype !== (first as Tensor | ChunkedTensor).dtype)
      throw new InputError(
        `concatRows '${label}': '${p.label}' is not a ${(first as Tensor).dtype} matrix like '${first.label}'`,
      );
    return m;
  });
  const bytesPerRow = k * itemSize(ms[0].dtype);
  if (bytesPerRow % 4 !== 0)
    throw new InputError(`concatRows '${label}': rows of ${bytesPerRow} bytes are not whole 4-byte words`);
  const device = ms[0].chunks[0].tensor.device;
  const out = await ChunkedTensor.empty(device, ms[0].dtype, [n, k], label);
  const g = new Graph(device, `concat:${label}`);
  copyRows(
    g,
    ms.map((m) => m.chunks),
    out.chunks,
    bytesPerRow,
  );
  return runCopies(g, out);
}

/** Vectors of one dtype joined end to end into one new tensor (each part's byte size a multiple of 4). */
export async function concatVectors(parts: readonly Tensor[], label: string): Promise<Tensor> {
  const dtype = parts[0]?.dtype;
  const n = parts.reduce((s, p) => s + p.numel, 0);
  for (const p of parts) {
    if (p.dtype !== dtype || p.shape.length !== 1 || (p.numel * itemSize(p.dtype)) % 4 !== 0) {
      throw new InputError(
        `concatVectors '${label}': '${p.label}' ${p.dtype}[${p.shape.join(', ')}] is not a vector of whole 4-byte words in ${dtype}`,
      );
    }
  }
  const out = await Tensor.empty(parts[0].device, dtype, [n], label);
  const g = new Graph(out.device, `concat:${label}`);
  copyRows(
    g,
    parts.map((p) => [{ tensor: p, rowStart: 0, rows: p.numel }]),
    [{ tensor: out, rowStart: 0, rows: n }],
    itemSize(dtype),
  );
  return runCopies(g, out);
}
