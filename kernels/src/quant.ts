// Block-quantised weights: the formats (declared once here; the host quantiser in quantize.ts and the WGSL readers
// generated below both follow this table), and QuantizedMatrix, the weight type linear() and embedding() take
// besides plain tensors (docs/quantization.md).
//
// A row of W [N, K] is cut into blocks of `block` weights along K (the last one padded with zero codes). Each block
// has integer codes and one f16 scale d (q8: w = d·q, q in −127..127) or an f16 scale and an f16 min
// (q4: w = d·q + m, q in 0..15). Codes and scales live in two parallel arrays, both row-major and row-chunked
// like ChunkedTensor:
//   data   u32 [rows, blocks · words]  a block's codes are `words` consecutive u32 words, so vec4<u32> loads
//                                       (16 bytes) never straddle a block: q8 one word per 4 weights (byte i is
//                                       weight 4j + i, two's complement); q4 one word per 8 weights (byte i holds
//                                       weight 8j + i in its low nibble and 8j + 4 + i in its high nibble), so
//                                       masks of a word (and one shift for q4's high nibbles) give 4 consecutive
//                                       codes either way.
//   scales f16 [rows, 2 · scale words] q4: (d, m) per block, one u32 word per block; q8: d per block, two blocks
//                                       per word, a row padded to whole words (so every row starts on a word).
// Parallel arrays rather than scales inside the blocks: every load stays 16-byte aligned, and a kernel reads a
// block's scale once and its codes in as many 16-byte loads as it likes.

import { type Device, InputError, LimitError, Tensor, numelOf } from '@glm4v/core';

export type QuantFormat = 'q8' | 'q4';

export interface QuantLayout {
  readonly name: string;
  /** Bits per code: 8 (signed, symmetric) or 4 (unsigned, with a min). */
  readonly bits: 8 | 4;
  /** Weights per block along K: a multiple of 32. */
  readonly block: number;
}

/**
 * The formats by name. q4's group of 64 (rather than 32) and its f16 scale and min were chosen by measured error,
 * speed and memory (`npm run bench:quant`; the figures and the reasons are in docs/quantization.md).
 */
export const QUANT_FORMATS: Readonly<Record<QuantFormat, QuantLayout>> = {
  q8: { name: 'q8', bits: 8, block: 32 },
  q4: { name: 'q4', bits: 4, block: 64 },
};

export function isQuantFormat(s: unknown): s is QuantFormat {
  return typeof s === 'string' && Object.prototype.hasOwnProperty.call(QUANT_FORMATS, s);
}

/** u32 code words per block. */
export function wordsPerBlock(l: QuantLayout): number {
  return (l.block * l.bits) / 32;
}

/** u32 words of f16 scales per row: q4 one per block (d, m), q8 one per two blocks. */
export function scaleWordsPerRow(l: QuantLayout, K: number): number {
  const blocks = blocksPerRow(l, K);
  return l.bits === 4 ? blocks : Math.ceil(blocks / 2);
}

export function blocksPerRow(l: QuantLayout, K: number): number {
  return Math.ceil(K / l.block);
}

/** Bytes one row takes: codes and scales (what a matvec reads per output). */
export function rowBytes(l: QuantLayout, K: number): { data: number; scales: number } {
  return { data: blocksPerRow(l, K) * wordsPerBlock(l) * 4, scales: scaleWordsPerRow(l, K) * 4 };
}

export interface QuantChunk {
  /** u32 [rows, blocks · words] */
  data: Tensor;
  /** f16 [rows, 2 · scaleWordsPerRow] */
  scales: Tensor;
  /** First row of the matrix held by this chunk. */
  rowStart: number;
  rows: number;
}

/** Host arrays of a quantised matrix (or of some of its rows). */
export interface QuantizedRows {
  data: Uint32Array;
  /** f16 bits */
  scales: Uint16Array;
}

/** A quantised weight matrix [N, K], split by rows into chunks whose codes and scales each fit one storage binding. */
export class QuantizedMatrix {
  readonly layout: QuantLayout;
  readonly shape: readonly [number, number];
  readonly label: string;
  readonly chunks: readonly QuantChunk[];

  constructor(layout: QuantLayout, shape: readonly [number, number], chunks: readonly QuantChunk[], label: string) {
    this.layout = layout;
    this.shape = Object.freeze([shape[0], shape[1]]) as readonly [number, number];
    this.chunks = chunks;
    this.label = label;
  }

  get rows(): number {
    return this.shape[0];
  }

  get byteSize(): number {
    return this.chunks.reduce((s, c) => s + c.data.byteSize + c.scales.byteSize, 0);
  }

  /** The most rows one chunk may hold: its codes and its scales each fit the binding limit (or `maxBytes`). */
  static rowsPerChunk(device: Device, layout: QuantLayout, shape: readonly number[], maxBytes = Infinity): number {
    const limit = Math.min(device.limits.maxStorageBufferBindingSize, maxBytes);
    const b = rowBytes(layout, shape[1]);
    const rows = Math.floor(limit / Math.max(b.data, b.scales));
    if (rows < 1)
      throw new LimitError(
        `one ${layout.name} row of ${shape[1]} weights (${b.data} bytes of codes) does not fit a storage binding of ${limit} bytes`,
      );
    return Math.min(rows, shape[0]);
  }

  /** Uninitialised chunks in pooled buffers. */
  static async empty(
    device: Device,
    layout: QuantLayout,
    shape: readonly number[],
    label = 'qmatrix',
    maxChunkBytes = Infinity,
  ): Promise<QuantizedMatrix> {
    if (shape.length !== 2 || numelOf(shape) === 0)
      throw new InputError(`'${label}': a quantised matrix is [N, K] with N, K ≥ 1, got [${shape.join(', ')}]`);
    const [N, K] = shape;
    const per = QuantizedMatrix.rowsPerChunk(device, layout, shape, maxChunkBytes);
    const b = rowBytes(layout, K);
    const tensors: Tensor[] = [];
    const chunks: QuantChunk[] = [];
    try {
      for (let r = 0; r < N; r += per) {
        const rows = Math.min(per, N - r);
        const name = `${label}[${r}:${r + rows}]`;
        const data = await Tensor.empty(device, 'u32', [rows, b.data / 4], `${name}.data`);
        tensors.push(data);
        const scales = await Tensor.empty(device, 'f16', [rows, b.scales / 2], `${name}.scales`);
        tensors.push(scales);
        chunks.push({ data, scales, rowStart: r, rows });
      }
    } catch (e) {
      for (const t of tensors) t.dispose();
      throw e;
    }
    return new QuantizedMatrix(layout, [N, K], chunks, label);
  }

  /** Writes rows [row0, row0 + n) from host arrays (whole rows; they may span chunks). */
  writeRows(row0: number, q: QuantizedRows): void {
    const b = rowBytes(this.layout, this.shape[1]);
    const dataWords = b.data / 4;
    const scaleHalves = b.scales / 2;
    const n = q.data.length / dataWords;
    if (!Number.isInteger(n) || q.scales.length !== n * scaleHalves || row0 < 0 || row0 + n > this.rows) {
      throw new InputError(
        `'${this.label}': ${q.data.length} code words and ${q.scales.length} scales at row ${row0} are not whole rows inside [0, ${this.rows})`,
      );
    }
    for (const c of this.chunks) {
      const a = Math.max(row0, c.rowStart);
      const e = Math.min(row0 + n, c.rowStart + c.rows);
      if (a >= e) continue;
      c.data.writeBytes(
        bytesOf(q.data.subarray((a - row0) * dataWords, (e - row0) * dataWords)),
        (a - c.rowStart) * b.data,
      );
      c.scales.writeBytes(
        bytesOf(q.scales.subarray((a - row0) * scaleHalves, (e - row0) * scaleHalves)),
        (a - c.rowStart) * b.scales,
      );
    }
  }

  /** Chunks holding `q` (the whole matrix), for tests and small weights. */
  static async fromHost(
    device: Device,
    layout: QuantLayout,
    shape: readonly [number, number],
    q: QuantizedRows,
    label = 'qmatrix',
    maxChunkBytes = Infinity,
  ): Promise<QuantizedMatrix> {
    const m = await QuantizedMatrix.empty(device, layout, shape, label, maxChunkBytes);
    try {
      m.writeRows(0, q);
    } catch (e) {
      m.dispose();
      throw e;
    }
    return m;
  }

  /** The codes and scales back from the GPU (tests). */
  async read(): Promise<QuantizedRows> {
    const b = rowBytes(this.layout, this.shape[1]);
    const data = new Uint32Array((this.rows * b.data) / 4);
    const scales = new Uint16Array((this.rows * b.scales) / 2);
    for (const c of this.chunks) {
      data.set((await c.data.read()) as Uint32Array, (c.rowStart * b.data) / 4);
      const bytes = await c.scales.readBytes();
      scales.set(new Uint16Array(bytes.buffer, bytes.byteOffset, (c.rows * b.scales) / 2), (c.rowStart * b.scales) / 2);
    }
    return { data, scales };
  }

  dispose(): void {
    for (const c of this.chunks) {
      c.data.dispose();
      c.scales.dispose();
    }
  }
}

function bytesOf(a: Uint32Array | Uint16Array): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

/**
 * WGSL for the kernels: the layout's constants; qcodes(v0, v1), the codes of 8 consecutive weights from QSTEP words
 * (q8: two, q4: one) as two vec4f (`a` k..k+3, `b` k+4..k+7), each code u times 2^(8i) for its byte i in the word
 * (QPOS undoes that); and qscale(row, b), a block's (d, m) from the scales binding `s` (array<u32>). A weight is
 * w = d·(u − QOFFSET) + m, so Σ_k w·x = d·Σ u·(x·QPOS) + (m − d·QOFFSET)·Σ x.
 * Why the odd form: masking a code in place costs one AND before the conversion to f32, where shifting it down
 * costs a shift too, and this is the inner loop of decode on CPU adapters (which do it in SIMD arithmetic). The
 * scaling by powers of two is exact, so u·2^(8i) · x·2^(−8i) is u·x exactly. q8's two's complement bytes become
 * u = q + 128 by one XOR per word (QOFFSET = 128); q4's high nibbles are masked after one shift per word.
 * Needs `p.K` from the kernel's uniform block.
 */
export function quantReader(l: QuantLayout, opts: { dequant?: boolean } = {}): string {
  return quantCodes(l) + (opts.dequant ? DEQUANT8 : '');
}

/**
 * qweights8(row, blocks, bk, t): the dequantised weights of 8-weight step t of block bk of a row, for kernels that
 * read the codes as array<u32> `w` and want the weights themselves (the tiled matmul, the embedding gather).
 */
const DEQUANT8 =
  'fn qweights8(row: u32, blocks: u32, bk: u32, t: u32) -> QW {\n' +
  '  let dm = qscale(row, bk);\n' +
  '  let at = (row * blocks + bk) * QWORDS + t * QSTEP;\n' +
  '  let c = qcodes(w[at], w[at + QSTEP - 1u]);\n' +
  "  let scale = vec4f(dm.x) * QPOS; // w = d·(u − QOFFSET) + m, the codes' byte positions undone\n" +
  '  let shift = vec4f(dm.y - dm.x * QOFFSET);\n' +
  '  return QW(fma(c.a, scale, shift), fma(c.b, scale, shift));\n}\n';

function quantCodes(l: QuantLayout): string {
  const head =
    `const QBLOCK: u32 = ${l.block}u; // weights per block\n` +
    `const QWORDS: u32 = ${wordsPerBlock(l)}u; // u32 code words per block\n` +
    `const QSTEP: u32 = ${l.bits === 8 ? 2 : 1}u; // words per 8 weights\n` +
    `const QOFFSET: f32 = ${l.bits === 8 ? '128.0' : '0.0'};\n` +
    'struct QW { a: vec4f, b: vec4f }\n' +
    'fn qblocks() -> u32 { return (p.K + QBLOCK - 1u) / QBLOCK; }\n' +
    'fn qi(v: vec4u) -> vec4f { return vec4f(bitcast<vec4i>(v)); } // < 2^31: converted as signed\n';
  if (l.bits === 8) {
    return (
      head +
      'const QPOS = vec4f(1.0, 1.0 / 256.0, 1.0 / 65536.0, 1.0); // byte 3 is shifted down instead\n' +
      'fn q8word(v: u32) -> vec4f { let u = v ^ 0x80808080u; return qi(vec4u(u & 0xffu, u & 0xff00u, u & 0xff0000u, u >> 24u)); }\n' +
      'fn qcodes(v0: u32, v1: u32) -> QW { return QW(q8word(v0), q8word(v1)); }\n' +
      '/** (d, 0) of block b of a row: f16 scales, two blocks per word, rows of (blocks + 1) / 2 words. */\n' +
      'fn qscale(row: u32, b: u32) -> vec2f {\n' +
      '  let v = unpack2x16float(s[row * ((qblocks() + 1u) / 2u) + (b >> 1u)]);\n' +
      '  return vec2f(select(v.x, v.y, (b & 1u) == 1u), 0.0);\n}\n'
    );
  }
  return (
    head +
    'const QPOS = vec4f(1.0, 1.0 / 256.0, 1.0 / 65536.0, 1.0 / 16777216.0);\n' +
    'const QMASK = vec4u(0xfu, 0xf00u, 0xf0000u, 0xf000000u);\n' +
    'fn qcodes(v0: u32, v1: u32) -> QW { return QW(qi(vec4u(v0) & QMASK), qi(vec4u(v0 >> 4u) & QMASK)); }\n' +
    '/** (d, m) of block b of a row: one word of two f16 per block. */\n' +
    'fn qscale(row: u32, b: u32) -> vec2f { return unpack2x16float(s[row * qblocks() + b]); }\n'
  );
}
