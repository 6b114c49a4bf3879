// A streaming, validating safetensors reader. Opening a file reads and checks its header only; tensor bytes are
// read on demand with positioned reads, so a 5 GB shard never sits in host memory. Files over 4 GiB work: the
// header length is a u64 and offsets are plain Numbers, refused above 2^53 where they would lose precision.
// The bytes come from a FileSource (a local file, a picked file in a page, a URL read with Range requests).
//
// Format (docs/model.md#safetensors): bytes 0–7 little-endian u64 H; bytes 8..8+H a UTF-8 JSON object mapping each tensor name to
// {dtype, shape, data_offsets: [begin, end]} (relative to byte 8+H, end-exclusive), plus an optional
// "__metadata__" object of strings.

import { CheckpointError, InputError } from '@glm4v/core';
import { openFile } from '#platform';
import type { FileSource } from '../files/folder.js';
import { DTYPE_SIZES, MAX_HEADER_BYTES, checkedNumel, isSafetensorsDType, type TensorInfo } from './format.js';

export {
  DTYPE_SIZES,
  MAX_HEADER_BYTES,
  checkedNumel,
  isSafetensorsDType,
  type SafetensorsDType,
  type TensorInfo,
} from './format.js';
export { writeSafetensors } from './writer.js';

export class SafetensorsFile {
  readonly path: string;
  readonly tensors: ReadonlyMap<string, TensorInfo>;
  readonly metadata: Record<string, string>;
  /** Size of the file when it was opened. */
  readonly fileSize: number;
  private handle: FileSource | undefined;

  private constructor(handle: FileSource, tensors: Map<string, TensorInfo>, metadata: Record<string, string>) {
    this.path = handle.path;
    this.handle = handle;
    this.fileSize = handle.size;
    this.tensors = tensors;
    this.metadata = metadata;
  }

  /**
   * Opens a file (a path under Node, a URL in a page, or an open FileSource, which the SafetensorsFile then owns)
   * and validates its header; throws CheckpointError naming the file (and tensor) at fault.
   */
  static async open(file: string | FileSource): Promise<SafetensorsFile> {
    let handle: FileSource;
    try {
      handle = typeof file === 'string' ? await openFile(file) : file;
    } catch (e) {
      throw new CheckpointError(`${file as string}: cannot open safetensors file: ${(e as Error).message}`, {
        cause: e,
      });
    }
    try {
      const { tensors, metadata } = await readHeader(handle);
      return new SafetensorsFile(handle, tensors, metadata);
    } catch (e) {
      await handle.close().catch(() => undefined);
      throw e;
    }
  }

  /** Bytes [start, start+length) of a tensor of this file, by positioned reads. */
  async read(info: TensorInfo, start = 0, length = info.byteLength - start): Promise<Uint8Array> {
    const out = new Uint8Array(length);
    await this.readInto(info, start, out);
    return out;
  }

  /** Fills `target` with the tensor's bytes from `start` on. */
  async readInto(info: TensorInfo, start: number, target: Uint8Array): Promise<void> {
    if (!Number.isSafeInteger(start) || start < 0 || start + target.byteLength > info.byteLength) {
      throw new InputError(
        `${this.path}: read of ${target.byteLength} bytes at ${start} is outside tensor '${info.name}' (${info.byteLength} bytes)`,
      );
    }
    const handle = this.handle;
    if (!handle) throw new InputError(`${this.path}: file is closed (reading '${info.name}')`);
    let done = 0;
    while (done < target.byteLength) {
      let n: number;
      try {
        n = await handle.read(target.subarray(done), info.offset + start + done);
      } catch (e) {
        throw new CheckpointError(`${this.path}: reading tensor '${info.name}' failed: ${(e as Error).message}`, {
          cause: e,
        });
      }
      if (n === 0) {
        throw new CheckpointError(
          `${this.path}: tensor '${info.name}' ends early: expected ${info.byteLength} bytes at offset ${info.offset}, ` +
            `the file ended after ${start + done} of them (was it truncated after opening?)`,
        );
      }
      done += n;
    }
  }

  async close(): Promise<void> {
    const h = this.handle;
    this.handle = undefined;
    await h?.close();
  }
}

async function readExactly(handle: FileSource, length: number, position: number, what: string): Promise<Uint8Array> {
  const buf = new Uint8Array(length);
  let done = 0;
  while (done < length) {
    let n: number;
    try {
      n = await handle.read(buf.subarray(done), position + done);
    } catch (e) {
      throw new CheckpointError(`${handle.path}: reading the ${what} failed: ${(e as Error).message}`, { cause: e });
    }
    if (n === 0)
      throw new CheckpointError(`${handle.path}: truncated file: the ${what} ends after ${done} of ${length} bytes`);
    done += n;
  }
  return buf;
}

async function readHeader(
  handle: FileSource,
): Promise<{ tensors: Map<string, TensorInfo>; metadata: Record<string, string> }> {
  const { path, size } = handle;
  if (size < 8)
    throw new CheckpointError(`${path}: truncated file: ${size} bytes, fewer than the 8-byte header length`);
  const lenBytes = await readExactly(handle, 8, 0, 'header length');
  const headerLen = new DataView(lenBytes.buffer).getBigUint64(0, true);
  if (headerLen > BigInt(MAX_HEADER_BYTES)) {
    throw new CheckpointError(
      `${path}: header length ${headerLen} bytes exceeds the ${MAX_HEADER_BYTES}-byte limit (not a safetensors file, or corrupt)`,
    );
  }
  const h = Number(headerLen);
  if (8 + h > size)
    throw new CheckpointError(
      `${path}: header length ${h} bytes is larger than the file allows (${size} bytes in all): truncated or corrupt`,
    );
  const raw = await readExactly(handle, h, 8, 'header');
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(raw));
  } catch (e) {
    throw new CheckpointError(`${path}: header is not valid UTF-8 JSON: ${(e as Error).message}`, { cause: e });
  }
  return parseHeader(path, json, 8 + h, size - 8 - h);
}

/** Validates a parsed header: dtypes, shapes, offsets inside the data section, sizes, no overlaps. */
export function parseHeader(
  path: string,
  json: unknown,
  dataStart: number,
  dataSize: number,
): { tensors: Map<string, TensorInfo>; metadata: Record<string, string> } {
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    throw new CheckpointError(
      `${path}: header must be a JSON object, got ${Array.isArray(json) ? 'an array' : typeof json}`,
    );
  }
  const tensors = new Map<string, TensorInfo>();
  let metadata: Record<string, string> = {};
  for (const [name, entry] of Object.entries(json as Record<string, unknown>)) {
    if (name === '__metadata__') {
      metadata = parseMetadata(path, entry);
      continue;
    }
    tensors.set(name, parseEntry(path, name, entry, dataStart, dataSize));
  }
  checkOverlaps(path, [...tensors.values()], dataStart);
  return { tensors, metadata };
}

function parseMetadata(path: string, entry: unknown): Record<string, string> {
  if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) {
    throw new CheckpointError(`${path}: "__metadata__" must be an object of strings, got ${JSON.stringify(entry)}`);
  }
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(entry)) {
    if (typeof v !== 'string')
      throw new CheckpointError(`${path}: "__metadata__.${k}" must be a string, got ${JSON.stringify(v)}`);
    out[k] = v;
  }
  return out;
}

function parseEntry(path: string, name: string, entry: unknown, dataStart: number, dataSize: number): TensorInfo {
  const where = `${path}: tensor '${name}'`;
  if (typeof entry !== 'object' || entry === null || Array.isArray(entry))
    throw new CheckpointError(`${where}: entry must be an object, got ${JSON.stringify(entry)}`);
  const { dtype, shape, data_offsets: offsets } = entry as Record<string, unknown>;
  if (!isSafetensorsDType(dtype)) {
    throw new CheckpointError(
      `${where}: unknown dtype ${JSON.stringify(dtype)} (expected one of ${Object.keys(DTYPE_SIZES).join(', ')})`,
    );
  }
  const numel = checkedNumel(shape);
  if (typeof numel === 'string') throw new CheckpointError(`${where}: ${numel}`);
  if (
    !Array.isArray(offsets) ||
    offsets.length !== 2 ||
    !offsets.every((o) => typeof o === 'number' && Number.isSafeInteger(o) && o >= 0)
  ) {
    throw new CheckpointError(
      `${where}: data_offsets must be two non-negative integers below 2^53, got ${JSON.stringify(offsets)}`,
    );
  }
  const [begin, end] = offsets as number[];
  if (end < begin) throw new CheckpointError(`${where}: data_offsets [${begin}, ${end}] end before they begin`);
  if (end > dataSize) {
    throw new CheckpointError(
      `${where}: data_offsets [${begin}, ${end}] run past the end of the data section (${dataSize} bytes): file truncated or offsets out of range`,
    );
  }
  const expected = numel * DTYPE_SIZES[dtype];
  if (end - begin !== expected) {
    throw new CheckpointError(
      `${where}: data_offsets [${begin}, ${end}] hold ${end - begin} bytes, expected ${expected} for ${dtype}[${(shape as number[]).join(', ')}]`,
    );
  }
  return { name, dtype, shape: [...(shape as number[])], file: path, offset: dataStart + begin, byteLength: expected };
}

function checkOverlaps(path: string, infos: TensorInfo[], dataStart: number): void {
  const sorted = infos.filter((t) => t.byteLength > 0).sort((a, b) => a.offset - b.offset);
  for (let i = 1; i < sorted.length; i++) {
    const a = sorted[i - 1];
    const b = sorted[i];
    if (b.offset < a.offset + a.byteLength) {
      const range = (t: TensorInfo) => `[${t.offset - dataStart}, ${t.offset - dataStart + t.byteLength})`;
      throw new CheckpointError(`${path}: tensors '${a.name}' ${range(a)} and '${b.name}' ${range(b)} overlap`);
    }
  }
}
