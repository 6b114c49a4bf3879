// A safetensors writer, for tests and the synthetic checkpoints of the load benchmark. Tensors are packed back to
// back in the order given; the header is padded with spaces so the data section starts 8-byte aligned (as the
// reference writer does). Data is written in bounded pieces, and a tensor may be produced piece by piece through
// `fill`, so a multi-gigabyte file never has to exist in memory.

import { createFile } from '#platform';
import { InputError } from '@glm4v/core';
import { DTYPE_SIZES, type SafetensorsDType, checkedNumel, isSafetensorsDType } from './format.js';

interface TensorHead {
  name: string;
  dtype: SafetensorsDType;
  shape: number[];
}

/** A tensor given whole. */
export interface TensorData extends TensorHead {
  data: Uint8Array | ArrayBufferView;
}

/** A tensor produced piece by piece: `fill` writes `out.byteLength` bytes of the tensor starting at `byteOffset`. */
export interface TensorStream extends TensorHead {
  fill(out: Uint8Array, byteOffset: number): void;
}

const PIECE = 16 * 2 ** 20;

function bytesOf(t: TensorData): Uint8Array {
  const d = t.data;
  return d instanceof Uint8Array ? d : new Uint8Array(d.buffer, d.byteOffset, d.byteLength);
}

/** The header bytes (length prefix included) and the data offsets of `tensors` packed in order. */
export function encodeHeader(
  tensors: readonly TensorHead[],
  metadata?: Record<string, string>,
): { header: Uint8Array; sizes: number[] } {
  const json: Record<string, unknown> = {};
  if (metadata && Object.keys(metadata).length) json.__metadata__ = metadata;
  const sizes: number[] = [];
  let offset = 0;
  for (const t of tensors) {
    if (!isSafetensorsDType(t.dtype))
      throw new InputError(`tensor '${t.name}': unknown dtype ${JSON.stringify(t.dtype)}`);
    const numel = checkedNumel(t.shape);
    if (typeof numel === 'string') throw new InputError(`tensor '${t.name}': ${numel}`);
    if (t.name in json) throw new InputError(`tensor '${t.name}' is given twice`);
    const size = numel * DTYPE_SIZES[t.dtype];
    json[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + size] };
    sizes.push(size);
    offset += size;
  }
  const text = new TextEncoder().encode(JSON.stringify(json));
  const padded = Math.ceil(text.byteLength / 8) * 8;
  const header = new Uint8Array(8 + padded).fill(0x20);
  new DataView(header.buffer).setBigUint64(0, BigInt(padded), true);
  header.set(text, 8);
  return { header, sizes };
}

/** Writes a safetensors file. Each tensor's data must hold exactly numel × itemsize bytes. */
export async function writeSafetensors(
  path: string,
  tensors: readonly (TensorData | TensorStream)[],
  metadata?: Record<string, string>,
): Promise<void> {
  const { header, sizes } = encodeHeader(tensors, metadata);
  tensors.forEach((t, i) => {
    if ('data' in t && bytesOf(t).byteLength !== sizes[i]) {
      throw new InputError(
        `tensor '${t.name}': ${bytesOf(t).byteLength} bytes given, expected ${sizes[i]} for ${t.dtype}[${t.shape.join(', ')}]`,
      );
    }
  });
  const handle = await createFile(path);
  try {
    let pos = 0;
    const write = async (bytes: Uint8Array) => {
      let done = 0;
      while (done < bytes.byteLength) done += await handle.write(bytes.subarray(done), pos + done);
      pos += bytes.byteLength;
    };
    await write(header);
    let scratch: Uint8Array | undefined;
    for (let i = 0; i < tensors.length; i++) {
      const t = tensors[i];
      if ('data' in t) {
        await write(bytesOf(t));
        continue;
      }
      scratch ??= new Uint8Array(PIECE);
      for (let off = 0; off < sizes[i]; off += PIECE) {
        const piece = scratch.subarray(0, Math.min(PIECE, sizes[i] - off));
        t.fill(piece, off);
        await write(piece);
      }
    }
  } finally {
    await handle.close();
  }
}
