import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Device } from './device.js';
import { BufferPool, sizeClass } from './buffer-pool.js';
import { LimitError } from './errors.js';
import { Tensor } from './tensor.js';

let device: Device;
beforeAll(async () => {
  device = await Device.create();
});
afterAll(() => device?.dispose());

describe('sizeClass', () => {
  it('wastes at most 12.5% and never shrinks', () => {
    for (const n of [1, 255, 256, 257, 4096, 4097, 65537, 1_000_000, 123_456_789]) {
      const c = sizeClass(n);
      expect(c).toBeGreaterThanOrEqual(n);
      expect(c % 256).toBe(0);
      if (n > 4096) expect(c / n).toBeLessThanOrEqual(1.125 + 1e-9);
    }
  });
});

describe('BufferPool', () => {
  it('reuses a released buffer of the same class and tracks bytes in use and peaks', async () => {
    const pool = device.pool;
    const before = pool.stats;
    const a = await pool.acquire(10_000, 'a');
    const b = await pool.acquire(20_000, 'b');
    const mid = pool.stats;
    expect(mid.bytesInUse - before.bytesInUse).toBe(sizeClass(10_000) + sizeClass(20_000));
    pool.release(a);
    const c = await pool.acquire(9_800, 'c'); // same class as 10 000
    expect(c).toBe(a);
    expect(pool.stats.reused).toBe(before.reused + 1);
    pool.release(b);
    pool.release(c);
    const after = pool.stats;
    expect(after.bytesInUse).toBe(before.bytesInUse);
    expect(after.peakBytesInUse).toBeGreaterThanOrEqual(before.bytesInUse + sizeClass(10_000) + sizeClass(20_000));
    expect(after.bytesAllocated).toBeGreaterThanOrEqual(sizeClass(10_000) + sizeClass(20_000));
    pool.trim();
    expect(pool.stats.bytesAllocated).toBe(pool.stats.bytesInUse);
  });

  it('trimIdle gives back the free buffers not taken since the last call, and keeps those that were', async () => {
    const pool = device.pool;
    pool.trimIdle();
    const base = pool.stats.bytesAllocated;
    const a = await pool.acquire(300_000, 'a');
    const b = await pool.acquire(700_000, 'b');
    pool.release(a);
    pool.release(b);
    pool.trimIdle(); // both taken since the last call: both kept
    expect(pool.stats.bytesAllocated).toBe(base + sizeClass(300_000) + sizeClass(700_000));
    const again = await pool.acquire(300_000, 'a again');
    expect(again).toBe(a);
    pool.release(again);
    pool.trimIdle(); // b idle since the last call: destroyed
    expect(pool.stats.bytesAllocated).toBe(base + sizeClass(300_000));
    pool.trimIdle();
    expect(pool.stats.bytesAllocated).toBe(base);
  });

  it('tensors return their buffers on dispose', async () => {
    const base = device.pool.stats.bytesInUse;
    const t = await Tensor.empty(device, 'f32', [1000]);
    expect(device.pool.stats.bytesInUse).toBe(base + sizeClass(4000));
    t.dispose();
    expect(device.pool.stats.bytesInUse).toBe(base);
  });

  it('refuses a buffer above maxBufferSize with a LimitError naming it', async () => {
    const huge = device.limits.maxBufferSize + 4;
    await expect(device.pool.acquire(huge, 'lm_head')).rejects.toThrow(LimitError);
    await expect(device.pool.acquire(huge, 'lm_head')).rejects.toThrow(/'lm_head'/);
  });
});

describe('BufferPool.probe', () => {
  it('holds every buffer at once, then frees them all: the pool keeps nothing', async () => {
    const before = device.pool.stats;
    expect(await device.pool.probe([1 << 20, 3 << 20, 256])).toBe((4 << 20) + 256);
    expect(device.pool.stats.bytesAllocated).toBe(before.bytesInUse); // the free buffers trimmed first, the probe's freed
    expect(device.pool.stats.bytesInUse).toBe(before.bytesInUse);
    device.check();
  });

  it('stops at the first buffer the device cannot allocate and reports the bytes held before it', async () => {
    // A device that runs out of memory after 10 MB: out-of-memory errors arrive through the error scope.
    const live = new Set<object>();
    let held = 0;
    let failed = false;
    const gpu = {
      pushErrorScope: () => undefined,
      popErrorScope: async () => (failed ? { message: 'out of memory' } : null),
      createBuffer: ({ size }: { size: number }) => {
        failed = held + size > 10e6;
        const b = { destroy: () => live.delete(b) && (held -= size) };
        if (!failed) {
          held += size;
          live.add(b);
        }
        return b;
      },
    };
    const fake = { gpu, check: () => undefined, limits: { maxBufferSize: 2 ** 30 }, adapter: { description: 'fake' } };
    const pool = new BufferPool(fake as unknown as Device);
    expect(await pool.probe([4e6, 4e6, 4e6, 4e6])).toBe(8e6);
    expect(live.size).toBe(0);
    expect(held).toBe(0);
    expect(await pool.probe([4e6, 4e6])).toBe(8e6); // everything was given back
    expect(await pool.probe([4e6, 2 ** 31])).toBe(4e6); // above maxBufferSize: cannot be held either
  });
});
