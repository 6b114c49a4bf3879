import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Device } from './device.js';
import { ChunkedTensor } from './chunked.js';
import { LimitError } from './errors.js';
import { asStored, uniform } from './testing.js';

let device: Device;
beforeAll(async () => {
  device = await Device.create();
});
afterAll(() => device?.dispose());

describe('ChunkedTensor', () => {
  it('splits rows so every chunk fits the binding limit, and reads back whole', async () => {
    const rows = 37;
    const cols = 7; // odd row length in bf16: chunks end mid-word
    const data = uniform(rows * cols, 5);
    const m = await ChunkedTensor.fromArray(device, 'bf16', [rows, cols], data, 'm', 10 * cols * 2);
    expect(m.chunks.map((c) => c.rows)).toEqual([10, 10, 10, 7]);
    expect(m.chunks.map((c) => c.rowStart)).toEqual([0, 10, 20, 30]);
    expect(Array.from(await m.read())).toEqual(Array.from(asStored('bf16', data)));
    m.dispose();
  });

  it('uses the device limit by default and names a row that can never fit', () => {
    const max = device.limits.maxStorageBufferBindingSize;
    expect(ChunkedTensor.rowsPerChunk(device, 'bf16', [151552, 4096])).toBe(Math.floor(max / 8192));
    expect(() => ChunkedTensor.rowsPerChunk(device, 'f32', [2, max])).toThrow(LimitError);
  });
});
