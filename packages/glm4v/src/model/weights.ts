// Where the model's weights come from: the checkpoint (checkpoint/WeightLoader scopes) or random numbers made
// on the GPU at the real shapes (RandomWeights, for speed and memory measurements without a checkpoint). The
// model code sees only this interface, so both paths build exactly the same modules.

import { ChunkedTensor, type DType, type Device, Graph, Tensor } from '@glm4v/core';
import { type LinearWeight, QUANT_FORMATS, type QuantFormat, QuantizedMatrix, fillRandom } from '@glm4v/kernels';

/** Which quantisable weights share a format: the decoder's linear layers, lm_head and the embedding table ('text'),
 *  the vision tower's and merger's linear layers ('vision'). */
export type QuantGroup = 'text' | 'vision';

/** Formats asked for, by group (absent: as the checkpoint stores them). */
export type QuantRequest = Partial<Record<QuantGroup, QuantFormat>>;

export interface WeightSource {
  scope(prefix: string): WeightSource;
  /** A tensor that fits one storage binding, checked against `shape`; `as` reshapes it (same element count). */
  get(name: string, shape: readonly number[], opts?: { as?: readonly number[] }): Promise<Tensor>;
  /** A matrix split into row chunks that each fit one storage binding. */
  matrix(name: string, shape: readonly number[], opts?: { as?: readonly number[] }): Promise<ChunkedTensor>;
  /**
   * A weight the load may quantise (a linear layer's [N, K], the embedding table), quantised when asked for its
   * group (or stored so); with `ranges`, those row
   * ranges as separate weights (the ViT's fused qkv → q, k, v).
   */
  quantizable(name: string, shape: readonly [number, number], group: QuantGroup, ranges?: readonly [number, number][]): Promise<LinearWeight[]>;
}

/** Random weights (bf16 by default, quantisable ones in the formats asked for) made and filled on the GPU. */
export class RandomWeights implements WeightSource {
  private readonly device: Device;
  private readonly dtype: DType;
  private readonly quant: QuantRequest;
  private readonly prefix: string;
  private readonly state: { seed: number; made: (Tensor | ChunkedTensor | QuantizedMatrix)[] };

  constructor(device: Device, opts: { seed?: number; dtype?: DType; quant?: QuantRequest } = {}, prefix = '', state?: RandomWeights['state']) {
    this.device = device;
    this.dtype = opts.dtype ?? 'bf16';
    this.quant = opts.quant ?? {};
    this.prefix = prefix;
    this.state = state ?? { seed: opts.seed ?? 1, made: [] };
  }

  scope(prefix: string): WeightSource {
    return new RandomWeights(this.device, { dtype: this.dtype, quant: this.quant }, this.prefix + prefix + '.', this.state);
  }

  async get(name: string, shape: readonly number[], opts: { as?: readonly number[] } = {}): Promise<Tensor> {
    return this.fill(await Tensor.empty(this.device, this.dtype, opts.as ?? shape, this.prefix + name), name, shape);
  }

  async matrix(name: string, shape: readonly number[], opts: { as?: readonly number[] } = {}): Promise<ChunkedTensor> {
    return this.fill(await ChunkedTensor.empty(this.device, this.dtype, opts.as ?? shape, this.prefix + name), name, shape);
  }

  async quantizable(name: string, shape: readonly [number, number], group: QuantGroup, ranges: readonly [number, number][] = [[0, shape[0]]]): Promise<LinearWeight[]> {
    const format = this.quant[group];
    const out: LinearWeight[] = [];
    for (const [a, b] of ranges) {
      const label = ranges.length > 1 ? `${name}[${a}:${b}]` : name;
      if (!format) out.push(await this.matrix(label, [b - a, shape[1]]));
      else out.push(await this.fill(await QuantizedMatrix.empty(this.device, QUANT_FORMATS[format], [b - a, shape[1]], this.prefix + label), label, shape));
    }
    return out;
  }

  private async fill<T extends Tensor | ChunkedTensor | QuantizedMatrix>(t: T, name: string, shape: readonly number[]): Promise<T> {
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
