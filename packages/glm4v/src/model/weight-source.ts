// Where the model's weights come from: the checkpoint (checkpoint/WeightLoader scopes) or random numbers made
// on the GPU at the real shapes (RandomWeights, for speed and memory measurements without a checkpoint). The
// model code sees only this interface, so both paths build exactly the same modules.

import { CheckpointError, ChunkedTensor, type DType, type Device, Graph, type RowChunk, Tensor } from '@glm4v/core';
import { type LinearWeight, QUANT_FORMATS, type QuantFormat, QuantizedMatrix, fillRandom, toF16 } from '@glm4v/kernels';

/** Which quantisable weights share a format: the decoder's linear layers, lm_head and the embedding table ('text'),
 *  the vision tower's and merger's linear layers ('vision'). */
export type QuantGroup = 'text' | 'vision';

/** Formats asked for, by group (absent: as the checkpoint stores them). */
export type QuantRequest = Partial<Record<QuantGroup, QuantFormat>>;

export interface GetOptions {
  /** View the tensor with this shape instead (same element count), e.g. a Conv3d weight as a GEMM matrix. */
  as?: readonly number[];
  /** Require this GPU dtype (default: any of bf16, f16, f32, i32, as stored). */
  dtype?: DType;
}

export interface MatrixOptions extends GetOptions {
  /** Cap on one row chunk's bytes (default: the loader's maxChunkBytes, else the device's binding limit). */
  maxChunkBytes?: number;
}

/** Row ranges [start, end) of one matrix. */
export type RowRanges = readonly (readonly [number, number])[];

/** Where the model's weights come from, under a key prefix: a checkpoint's (LoaderScope), random or converted. */
export interface WeightSource {
  scope(prefix: string): WeightSource;
  /** A tensor that fits one storage binding, checked against `shape` (LimitError otherwise: use matrix). */
  get(name: string, shape: readonly number[], opts?: GetOptions): Promise<Tensor>;
  /** A matrix split by rows into chunks that each fit one storage binding. */
  matrix(name: string, shape: readonly number[], opts?: MatrixOptions): Promise<ChunkedTensor>;
  /**
   * A weight the load may quantise (a linear layer's [N, K], the embedding table), quantised when asked for its
   * group (or stored so); with `ranges`, those row ranges as separate weights (the ViT's fused qkv → q, k, v).
   */
  quantizable(
    name: string,
    shape: readonly [number, number],
    group: QuantGroup,
    ranges?: RowRanges,
  ): Promise<LinearWeight[]>;
}

/** Random weights (bf16 by default, quantisable ones in the formats asked for) made and filled on the GPU. */
export class RandomWeights implements WeightSource {
  private readonly device: Device;
  private readonly dtype: DType;
  private readonly quant: QuantRequest;
  private readonly prefix: string;
  private readonly state: { seed: number; made: (Tensor | ChunkedTensor | QuantizedMatrix)[] };

  constructor(
    device: Device,
    opts: { seed?: number; dtype?: DType; quant?: QuantRequest } = {},
    prefix = '',
    state?: RandomWeights['state'],
  ) {
    this.device = device;
    this.dtype = opts.dtype ?? 'bf16';
    this.quant = opts.quant ?? {};
    this.prefix = prefix;
    this.state = state ?? { seed: opts.seed ?? 1, made: [] };
  }

  scope(prefix: string): WeightSource {
    return new RandomWeights(
      this.device,
      { dtype: this.dtype, quant: this.quant },
      this.prefix + prefix + '.',
      this.state,
    );
  }

  async get(name: string, shape: readonly number[], opts: GetOptions = {}): Promise<Tensor> {
    return this.fill(
      await Tensor.empty(this.device, opts.dtype ?? this.dtype, opts.as ?? shape, this.prefix + name),
      name,
      shape,
    );
  }

  async matrix(name: string, shape: readonly number[], opts: MatrixOptions = {}): Promise<ChunkedTensor> {
    return this.fill(
      await ChunkedTensor.empty(this.device, opts.dtype ?? this.dtype, opts.as ?? shape, this.prefix + name),
      name,
      shape,
    );
  }

  async quantizable(
    name: string,
    shape: readonly [number, number],
    group: QuantGroup,
    ranges: RowRanges = [[0, shape[0]]],
  ): Promise<LinearWeight[]> {
    const format = this.quant[group];
    const out: LinearWeight[] = [];
    for (const [a, b] of ranges) {
      const label = ranges.length > 1 ? `${name}[${a}:${b}]` : name;
      if (!format) out.push(await this.matrix(label, [b - a, shape[1]]));
      else
        out.push(
          await this.fill(
            await QuantizedMatrix.empty(this.device, QUANT_FORMATS[format], [b - a, shape[1]], this.prefix + label),
            label,
            shape,
          ),
        );
    }
    return out;
  }

  private async fill<T extends Tensor | ChunkedTensor | QuantizedMatrix>(
    t: T,
    name: string,
    shape: readonly number[],
  ): Promise<T> {
    this.state.made.push(t);
    // Linear weights: uniform with fan-in scaling keeps activations bounded over 40 layers; norms uniform in
    // [-1, 1]; biases small. Every number stays finite, which is all a speed measurement needs.
    const scale = shape.length >= 2 ? Math.sqrt(3 / shape[shape.length - 1]) : name.endsWith('bias') ? 0.02 : 1;
    const g = new Graph(this.device, `random:${this.prefix}${name}`);
    fillRandom(g, t, this.state.seed++, scale);
    await g.run();
    g.dispose();
    return t;
  }

  /** Frees every weight made (the model normally owns and frees them). */
  dispose(): void {
    for (const t of this.state.made) t.dispose();
  }
}

/**
 * The matrices of another source in f16, for the tensor-core matmul's f16 operands (kernels' matmulWeightDType):
 * each bf16 or f32 matrix is converted on the GPU as it is loaded and its original freed; a value beyond f16's
 * range is a CheckpointError naming the tensor. Vectors (norms, biases), f16 matrices and quantised ones pass
 * through.
 */
export class F16Matrices implements WeightSource {
  constructor(
    private readonly inner: WeightSource,
    private readonly device: Device,
    private readonly made: ChunkedTensor[] = [],
  ) {}

  scope(prefix: string): WeightSource {
    return new F16Matrices(this.inner.scope(prefix), this.device, this.made);
  }

  get(name: string, shape: readonly number[], opts?: GetOptions): Promise<Tensor> {
    return this.inner.get(name, shape, opts);
  }

  async matrix(name: string, shape: readonly number[], opts?: MatrixOptions): Promise<ChunkedTensor> {
    return this.convert(await this.inner.matrix(name, shape, opts));
  }

  /** Quantised weights pass through: their kernels dequantise in registers and do not use the matrix units. */
  async quantizable(
    name: string,
    shape: readonly [number, number],
    group: QuantGroup,
    ranges?: RowRanges,
  ): Promise<LinearWeight[]> {
    const out: LinearWeight[] = [];
    for (const w of await this.inner.quantizable(name, shape, group, ranges))
      out.push(w instanceof ChunkedTensor ? await this.convert(w) : w);
    return out;
  }

  /** Frees every f16 matrix made (the model normally owns them): for a build that failed part-way. */
  dispose(): void {
    for (const m of this.made) m.dispose();
  }

  private async convert(m: ChunkedTensor): Promise<ChunkedTensor> {
    if (m.dtype !== 'bf16' && m.dtype !== 'f32') return m;
    const d = this.device;
    const chunks: RowChunk[] = [];
    const f16 = new ChunkedTensor('f16', m.shape, chunks, m.label);
    this.made.push(f16); // freed by dispose() if anything below fails
    for (const c of m.chunks)
      chunks.push({ ...c, tensor: await Tensor.empty(d, 'f16', c.tensor.shape, c.tensor.label) });
    const bad = await Tensor.fromArray(d, 'u32', [1], new Uint32Array([0]), `${m.label}:beyond_f16`);
    const g = new Graph(d, `to-f16:${m.label}`);
    try {
      m.chunks.forEach((c, i) => toF16(g, c.tensor, chunks[i].tensor, bad));
      await g.run();
      const n = (await bad.read())[0];
      if (n > 0) {
        throw new CheckpointError(
          `tensor '${m.label}': ${n} value(s) beyond f16's range (±65504, or not finite); the tensor-core matmul takes its ` +
            'weights in f16. Run without it: GLM4V_DISABLE_FEATURES=chromium-experimental-subgroup-matrix',
        );
      }
    } finally {
      g.dispose();
      bad.dispose();
    }
    m.dispose();
    return f16;
  }
}
