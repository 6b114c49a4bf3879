import { ChunkedTensor, type Device, Graph, Tensor } from '@glm4v/core';
import { embedding, fillRandom } from '@glm4v/kernels';
import type { KernelCase } from './harness.js';

// Gathering a 512-token prompt from the real embed_tokens table: 151552 × 4096 bf16 (1.24 GB, ten row chunks on a
// 128 MiB binding limit). Bytes: the rows read and the f32 rows written.
function embeddingCase(rows: number): KernelCase {
  const [vocab, cols] = [151552, 4096];
  return {
    kernel: 'embedding',
    shape: `${rows} of ${vocab}x${cols}`,
    dtype: 'bf16w_f32a',
    bound: 'memory',
    bytes: rows * cols * 6 + rows * 4,
    flops: 0,
    async build(device: Device) {
      const table = await ChunkedTensor.empty(device, 'bf16', [vocab, cols], 'embed_tokens');
      const fill = new Graph(device, 'bench-embedding-fill');
      fillRandom(fill, table, 1, 0.05);
      await fill.run();
      fill.dispose();
      const ids = await Tensor.fromArray(
        device,
        'i32',
        [rows],
        Int32Array.from({ length: rows }, (_, i) => (i * 104729) % vocab),
      );
      const graph = new Graph(device, 'bench-embedding');
      embedding(graph, table, ids);
      return { graph, dispose: () => [graph, table, ids].forEach((o) => o.dispose()) };
    },
  };
}

export const cases: KernelCase[] = [embeddingCase(512)];
