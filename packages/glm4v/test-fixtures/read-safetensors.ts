// Test-only reader for small safetensors fixtures (whole file in memory). The runtime's streaming reader lives in
// src/checkpoint/; this one exists so the preprocessing tests do not depend on it.

import { readFileSync } from 'node:fs';

export interface FixtureTensor {
  dtype: string;
  shape: number[];
  data: Uint8Array | Float32Array | Int32Array | BigInt64Array | Float64Array;
}

const CTORS: Record<string, { new (b: ArrayBuffer): FixtureTensor['data']; BYTES_PER_ELEMENT: number }> = {
  U8: Uint8Array,
  F32: Float32Array,
  F64: Float64Array,
  I32: Int32Array,
  I64: BigInt64Array,
};

export function readSafetensors(path: string): Map<string, FixtureTensor> {
  const buf = readFileSync(path);
  const n = Number(buf.readBigUInt64LE(0));
  const header = JSON.parse(buf.subarray(8, 8 + n).toString('utf8')) as Record<
    string,
    { dtype: string; shape: number[]; data_offsets: [number, number] }
  >;
  const out = new Map<string, FixtureTensor>();
  for (const [name, e] of Object.entries(header)) {
    if (name === '__metadata__') continue;
    const ctor = CTORS[e.dtype];
    if (!ctor) throw new Error(`${path}: ${name} has unsupported dtype ${e.dtype}`);
    const [b, end] = e.data_offsets;
    const bytes = buf.subarray(8 + n + b, 8 + n + end);
    const copy = new ArrayBuffer(bytes.length);
    new Uint8Array(copy).set(bytes);
    out.set(name, { dtype: e.dtype, shape: e.shape, data: new ctor(copy) });
  }
  return out;
}

/** Int64 tensor as plain numbers. */
export function toNumbers(t: FixtureTensor): number[] {
  return Array.from(t.data as ArrayLike<number | bigint>, (v) => Number(v));
}
