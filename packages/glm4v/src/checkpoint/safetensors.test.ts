import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtemp, open, rm, truncate, writeFile, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CheckpointError, InputError } from '@glm4v/core';
import { SafetensorsFile } from './safetensors.js';
import { encodeHeader, writeSafetensors } from './writer.js';
import { rejectionOf } from '@glm4v/core/testing';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'glm4v-st-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

let nth = 0;
/** A file of an 8-byte length (default: the header's), the header text, then `data` bytes. */
async function raw(
  header: string | Uint8Array | object,
  data: Uint8Array = new Uint8Array(0),
  length?: bigint,
): Promise<string> {
  const text =
    header instanceof Uint8Array
      ? header
      : new TextEncoder().encode(typeof header === 'string' ? header : JSON.stringify(header));
  const bytes = new Uint8Array(8 + text.byteLength + data.byteLength);
  new DataView(bytes.buffer).setBigUint64(0, length ?? BigInt(text.byteLength), true);
  bytes.set(text, 8);
  bytes.set(data, 8 + text.byteLength);
  const path = join(dir, `f${nth++}.safetensors`);
  await writeFile(path, bytes);
  return path;
}

function iota(n: number): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = (i * 7 + 3) & 255;
  return out;
}

describe('SafetensorsFile', () => {
  it('round-trips the writer: dtypes, shapes, metadata, 8-byte aligned data section, positioned reads', async () => {
    const path = join(dir, 'round.safetensors');
    const a = new Float32Array([1, -2, 3.5, 4, 5, 6]);
    const b = new Uint16Array([0x3f80, 0xbf80, 0x4000]); // bf16 with an odd element count
    const c = Uint8Array.from([1, 0, 1]);
    await writeSafetensors(
      path,
      [
        { name: 'a', dtype: 'F32', shape: [2, 3], data: a },
        { name: 'b', dtype: 'BF16', shape: [3], data: b },
        { name: 'c', dtype: 'BOOL', shape: [3], data: c },
        { name: 'empty', dtype: 'F16', shape: [0, 4], data: new Uint16Array(0) },
        { name: 'scalar', dtype: 'I64', shape: [], data: new BigInt64Array([-5n]) },
      ],
      { format: 'pt' },
    );
    const f = await SafetensorsFile.open(path);
    expect(f.metadata).toEqual({ format: 'pt' });
    expect([...f.tensors.keys()]).toEqual(['a', 'b', 'c', 'empty', 'scalar']);
    const ta = f.tensors.get('a')!;
    expect(ta).toMatchObject({ dtype: 'F32', shape: [2, 3], byteLength: 24, file: path });
    expect(ta.offset % 8).toBe(0);
    expect(new Float32Array((await f.read(ta)).buffer)).toEqual(a);
    expect(new Uint16Array((await f.read(f.tensors.get('b')!)).buffer)).toEqual(b);
    expect(await f.read(f.tensors.get('c')!)).toEqual(c);
    expect((await f.read(f.tensors.get('empty')!)).byteLength).toBe(0);
    expect(new BigInt64Array((await f.read(f.tensors.get('scalar')!)).buffer)[0]).toBe(-5n);
    // A range inside a tensor, and one outside it.
    expect(new Float32Array((await f.read(ta, 8, 12)).buffer)).toEqual(a.subarray(2, 5));
    await expect(f.read(ta, 20, 8)).rejects.toBeInstanceOf(InputError);
    await f.close();
    await expect(f.read(ta)).rejects.toThrow(/closed/);
  });

  it('writes a tensor given piece by piece exactly like one given whole', async () => {
    const data = iota(36_000_000); // 18M bf16 values: more than one 16 MiB writer piece
    const p1 = join(dir, 'whole.safetensors');
    const p2 = join(dir, 'stream.safetensors');
    await writeSafetensors(p1, [{ name: 'w', dtype: 'BF16', shape: [18_000_000], data }]);
    await writeSafetensors(p2, [
      {
        name: 'w',
        dtype: 'BF16',
        shape: [18_000_000],
        fill: (out, off) => out.set(data.subarray(off, off + out.byteLength)),
      },
    ]);
    expect(Buffer.compare(await readFile(p1), await readFile(p2))).toBe(0);
  });

  it('refuses writer input of the wrong size', async () => {
    await expect(
      writeSafetensors(join(dir, 'bad.safetensors'), [
        { name: 'x', dtype: 'F32', shape: [3], data: new Float32Array(2) },
      ]),
    ).rejects.toThrow(/'x': 8 bytes given, expected 12/);
  });

  it('reads a tensor beyond 4 GiB of a (sparse) 5 GiB file', async () => {
    const path = join(dir, 'big.safetensors');
    const big = 4.5 * 2 ** 30; // zeros, never written: the file is sparse on disk
    const { header } = encodeHeader([
      { name: 'pad', dtype: 'U8', shape: [big] },
      { name: 'tail', dtype: 'F32', shape: [4] },
    ]);
    const h = await open(path, 'w');
    await h.write(header, 0, header.byteLength, 0);
    const tail = new Float32Array([1, 2, 3, 4]);
    await h.write(new Uint8Array(tail.buffer), 0, 16, header.byteLength + big);
    await h.close();
    const f = await SafetensorsFile.open(path);
    const t = f.tensors.get('tail')!;
    expect(t.offset).toBe(header.byteLength + big);
    expect(t.offset).toBeGreaterThan(2 ** 32);
    expect(new Float32Array((await f.read(t)).buffer)).toEqual(tail);
    expect(await f.read(f.tensors.get('pad')!, big - 8, 8)).toEqual(new Uint8Array(8));
    await f.close();
    await rm(path);
  });
});

// Each malformed file: a CheckpointError naming the file and, where one is at fault, the tensor.
describe('SafetensorsFile refuses malformed files', () => {
  const f32x4 = { dtype: 'F32', shape: [4], data_offsets: [0, 16] };
  const cases: [string, () => Promise<string>, RegExp][] = [
    [
      'a file shorter than the length prefix',
      async () => {
        const p = join(dir, 'tiny.safetensors');
        await writeFile(p, new Uint8Array(5));
        return p;
      },
      /truncated file: 5 bytes/,
    ],
    [
      'a header length larger than the file',
      () => raw({ w: f32x4 }, iota(16), 1000n),
      /header length 1000 bytes is larger than the file allows/,
    ],
    [
      'an oversized header (> 100 MB)',
      () => raw({ w: f32x4 }, iota(16), 200_000_000n),
      /header length 200000000 bytes exceeds the 100000000-byte limit/,
    ],
    ['a header length beyond 2^53', () => raw({ w: f32x4 }, iota(16), 2n ** 63n), /exceeds the 100000000-byte limit/],
    ['invalid JSON', () => raw('{"w": {"dtype": "F32", ', iota(16)), /header is not valid UTF-8 JSON/],
    [
      'invalid UTF-8',
      () => raw(Uint8Array.from([0x7b, 0xff, 0x7d]), iota(4)),
      /header is not valid UTF-8 JSON: The encoded data was not valid/,
    ],
    ['a header that is not an object', () => raw('[1, 2]'), /header must be a JSON object, got an array/],
    ['an unknown dtype', () => raw({ w: { ...f32x4, dtype: 'Q4_K' } }, iota(16)), /tensor 'w': unknown dtype "Q4_K"/],
    [
      'a negative dimension',
      () => raw({ w: { ...f32x4, shape: [-4] } }, iota(16)),
      /tensor 'w': shape \[-4\] has a dimension that is not a non-negative integer/,
    ],
    [
      'a fractional dimension',
      () => raw({ w: { ...f32x4, shape: [2.5, 2] } }, iota(16)),
      /tensor 'w': shape \[2.5, 2\] has a dimension/,
    ],
    ['a non-numeric dimension', () => raw({ w: { ...f32x4, shape: ['4'] } }, iota(16)), /tensor 'w': shape \["4"\]/],
    [
      'offsets past the data section',
      () => raw({ w: { ...f32x4, data_offsets: [0, 32], shape: [8] } }, iota(16)),
      /tensor 'w': data_offsets \[0, 32\] run past the end of the data section \(16 bytes\)/,
    ],
    [
      'a truncated file',
      () => raw({ a: f32x4, w: { dtype: 'F32', shape: [4], data_offsets: [16, 32] } }, iota(30)),
      /tensor 'w': data_offsets \[16, 32\] run past the end of the data section \(30 bytes\): file truncated/,
    ],
    [
      'offsets of the wrong size',
      () => raw({ w: { ...f32x4, data_offsets: [0, 12] } }, iota(16)),
      /tensor 'w': data_offsets \[0, 12\] hold 12 bytes, expected 16 for F32\[4\]/,
    ],
    [
      'reversed offsets',
      () => raw({ w: { ...f32x4, data_offsets: [16, 0] } }, iota(16)),
      /tensor 'w': data_offsets \[16, 0\] end before they begin/,
    ],
    [
      'negative offsets',
      () => raw({ w: { ...f32x4, data_offsets: [-16, 0] } }, iota(16)),
      /tensor 'w': data_offsets must be two non-negative integers/,
    ],
    [
      'fractional offsets',
      () => raw({ w: { ...f32x4, data_offsets: [0.5, 16.5] } }, iota(17)),
      /tensor 'w': data_offsets must be two non-negative integers/,
    ],
    [
      'overlapping tensors',
      () => raw({ a: f32x4, w: { dtype: 'F32', shape: [4], data_offsets: [8, 24] } }, iota(24)),
      /tensors 'a' \[0, 16\) and 'w' \[8, 24\) overlap/,
    ],
    ['a non-object entry', () => raw({ w: [1, 2] }, iota(16)), /tensor 'w': entry must be an object/],
    [
      'non-string metadata',
      () => raw({ __metadata__: { format: 1 }, w: f32x4 }, iota(16)),
      /"__metadata__.format" must be a string/,
    ],
  ];
  for (const [what, make, message] of cases) {
    it(what, async () => {
      const path = await make();
      const e = await rejectionOf(SafetensorsFile.open(path));
      expect(e).toBeInstanceOf(CheckpointError);
      expect(e.message).toContain(path);
      expect(e.message).toMatch(message);
    });
  }

  it('notices a file truncated after it was opened', async () => {
    const path = await raw({ w: f32x4 }, iota(16));
    const f = await SafetensorsFile.open(path);
    const info = f.tensors.get('w')!;
    await truncate(path, info.offset + 6);
    const e = await rejectionOf(f.read(info));
    expect(e).toBeInstanceOf(CheckpointError);
    expect(e.message).toMatch(new RegExp(`${path}: tensor 'w' ends early: expected 16 bytes .* after 6 of them`));
    await f.close();
  });

  it('names the file it cannot open', async () => {
    const e = await rejectionOf(SafetensorsFile.open(join(dir, 'nope.safetensors')));
    expect(e).toBeInstanceOf(CheckpointError);
    expect(e.message).toMatch(/nope\.safetensors: cannot open/);
  });
});
