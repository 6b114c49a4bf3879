// A quantised copy of a checkpoint folder (`glm4v-run quantize`): every shard rewritten with its quantisable weights
// as codes and scales (quantized.ts describes the stored form), everything else copied byte for byte, and the
// folder's other files (configs, tokenizer, chat template) copied beside. It loads directly, in its own formats,
// reading about a third (q4) or a half (q8) of the original's bytes and quantising nothing.
//
// Needs no GPU: the host quantiser is the one loading uses (so both give the same bits). Memory stays bounded:
// each tensor streams through in pieces of whole rows; the output is written into `<out>.partial-<pid>` and
// renamed into place at the end, so a failed or interrupted run leaves no half-written checkpoint behind.

import { copyFile, mkdir, open, readdir, rename, rm, stat, writeFile, type FileHandle } from 'node:fs/promises';
import { basename, join, resolve } from 'node:path';
import { CheckpointError, InputError, itemSize } from '@glm4v/core';
import {
  QUANT_FORMATS,
  type QuantFormat,
  type SourceDType,
  quantizeRows,
  quantizedSize,
  rowBytes,
  widenToF32,
} from '@glm4v/kernels';
import { readConfigs } from '../config.js';
import { checkpointShapes } from '../model/tensor-shapes.js';
import type { QuantRequest } from '../model/weight-source.js';
import { Checkpoint, INDEX_FILE } from './checkpoint.js';
import { FormatPolicy, QSCALES, QWEIGHT, formatKey, storedWeight } from './quantized.js';
import type { SafetensorsDType, TensorInfo } from './safetensors.js';
import { encodeHeader } from './writer.js';

export interface QuantizeProgress {
  /** Bytes of the source checkpoint done, of `bytesTotal`. */
  bytesDone: number;
  bytesTotal: number;
  tensor: string;
}

export interface QuantizeOptions {
  onProgress?: (p: QuantizeProgress) => void;
  /** Source bytes read at once (default 16 MiB; at least one row of the widest tensor is read whatever this is). */
  pieceBytes?: number;
}

/** One tensor of an output shard: where its bytes come from. */
type Part =
  | { name: string; dtype: SafetensorsDType; shape: number[]; copy: TensorInfo }
  | {
      name: string;
      dtype: SafetensorsDType;
      shape: number[];
      quantize: { from: TensorInfo; key: string; format: QuantFormat; scales: boolean };
    };

/** Weight files that are not copied: the shards are rewritten, other formats of the same weights are left out. */
const WEIGHT_FILE = /\.(safetensors|bin|pt|pth|ckpt|gguf|h5|msgpack|onnx)$/;

/** Writes the quantised copy of checkpoint folder `src` into `out` (which must not exist). */
export async function quantizeCheckpoint(
  src: string,
  out: string,
  formats: QuantRequest,
  opts: QuantizeOptions = {},
): Promise<void> {
  if (!formats.text && !formats.vision)
    throw new InputError('quantize: no format given for the decoder or the vision tower');
  if (resolve(src) === resolve(out))
    throw new InputError(`quantize: the output folder ${out} is the model folder itself`);
  if (
    await stat(out).then(
      () => true,
      () => false,
    )
  )
    throw new InputError(`quantize: ${out} already exists; choose a new folder`);
  const { model: config } = await readConfigs(src);
  const ckpt = await Checkpoint.open(src);
  const partial = `${resolve(out)}.partial-${process.pid}`;
  try {
    const shards = planShards(ckpt, checkpointShapes(config), formats);
    await rm(partial, { recursive: true, force: true });
    await mkdir(partial, { recursive: true });
    const progress = { done: 0, total: ckpt.totalBytes, report: opts.onProgress };
    for (const [file, parts] of shards)
      await writeShard(ckpt, join(partial, basename(file)), parts, progress, opts.pieceBytes ?? 16 * 2 ** 20);
    await writeIndex(ckpt, partial, shards);
    await copyOtherFiles(src, partial);
    await rename(partial, out);
  } catch (e) {
    await rm(partial, { recursive: true, force: true });
    throw e;
  } finally {
    await ckpt.close();
  }
}

/** Every output shard (by source shard path) with its tensors in the source's storage order. */
function planShards(
  ckpt: Checkpoint,
  shapes: ReturnType<typeof checkpointShapes>,
  formats: QuantRequest,
): Map<string, Part[]> {
  const quantizable = new Map(shapes.filter((t) => t.quant).map((t) => [t.name, t]));
  const policy = new FormatPolicy(formats);
  const shards = new Map<string, Part[]>();
  for (const info of ckpt.inFileOrder()) {
    const parts = shards.get(info.file) ?? [];
    shards.set(info.file, parts);
    const base = info.name.endsWith(QWEIGHT)
      ? info.name.slice(0, -QWEIGHT.length)
      : info.name.endsWith(QSCALES)
        ? info.name.slice(0, -QSCALES.length)
        : info.name;
    const t = quantizable.get(base);
    if (!t) {
      parts.push({ name: info.name, dtype: info.dtype, shape: info.shape, copy: info });
      continue;
    }
    const stored = storedWeight(ckpt, base, t.shape);
    if (!stored) throw new CheckpointError(`${info.file}: tensor '${info.name}' has no '${base}${QWEIGHT}' beside it`);
    // refuses a stored format other than the one asked for, and mixed formats; a stored one is copied as it is
    const format = policy.decide(base, t.quant!, stored);
    if (stored.kind === 'quant' || !format) {
      parts.push({ name: info.name, dtype: info.dtype, shape: info.shape, copy: info });
      continue;
    }
    const b = rowBytes(QUANT_FORMATS[format], t.shape[1]);
    parts.push({
      name: base + QWEIGHT,
      dtype: 'U8',
      shape: [t.shape[0], b.data],
      quantize: { from: info, key: base, format, scales: false },
    });
    parts.push({
      name: base + QSCALES,
      dtype: 'F16',
      shape: [t.shape[0], b.scales / 2],
      quantize: { from: info, key: base, format, scales: true },
    });
  }
  return shards;
}

async function writeShard(
  ckpt: Checkpoint,
  path: string,
  parts: Part[],
  progress: { done: number; total: number; report?: (p: QuantizeProgress) => void },
  pieceBytes: number,
): Promise<void> {
  const metadata: Record<string, string> = { format: 'pt', producer: '@glm4v/runtime glm4v-run quantize' };
  for (const p of parts) if ('quantize' in p) metadata[formatKey(p.quantize.key)] = p.quantize.format;
  for (const p of parts)
    if ('copy' in p && p.name.endsWith(QWEIGHT)) Object.assign(metadata, carriedFormat(ckpt, p.copy));
  const { header, sizes } = encodeHeader(parts, metadata);
  const offsets: number[] = [];
  parts.reduce((at, _, i) => (offsets.push(at), at + sizes[i]), header.byteLength);
  const handle = await open(path, 'w');
  try {
    await writeAt(handle, header, 0);
    for (let i = 0; i < parts.length; i++) {
      const p = parts[i];
      const report = (bytes: number) => {
        progress.done += bytes;
        progress.report?.({ bytesDone: progress.done, bytesTotal: progress.total, tensor: p.name });
      };
      if ('copy' in p) await copyTensor(ckpt, p.copy, handle, offsets[i], pieceBytes, report);
      else if (!p.quantize.scales)
        await quantizeTensor(
          ckpt,
          p.quantize.from,
          p.quantize.key,
          p.quantize.format,
          handle,
          offsets[i],
          offsets[i + 1],
          pieceBytes,
          report,
        );
    }
  } finally {
    await handle.close();
  }
}

/** The metadata entry naming the format of a quantised weight that is copied as it is. */
function carriedFormat(ckpt: Checkpoint, codes: TensorInfo): Record<string, string> {
  const key = codes.name.slice(0, -QWEIGHT.length);
  const stored = (codes.sourceName ?? codes.name).slice(0, -QWEIGHT.length);
  return { [formatKey(key)]: ckpt.file(codes).metadata[formatKey(stored)] };
}

async function writeAt(handle: FileHandle, bytes: Uint8Array, position: number): Promise<void> {
  for (let done = 0; done < bytes.byteLength;)
    done += (await handle.write(bytes, done, bytes.byteLength - done, position + done)).bytesWritten;
}

async function copyTensor(
  ckpt: Checkpoint,
  info: TensorInfo,
  handle: FileHandle,
  at: number,
  pieceBytes: number,
  report: (n: number) => void,
): Promise<void> {
  const buf = new Uint8Array(Math.min(pieceBytes, info.byteLength));
  for (let off = 0; off < info.byteLength; off += buf.byteLength) {
    const piece = buf.subarray(0, Math.min(buf.byteLength, info.byteLength - off));
    await ckpt.readInto(info, off, piece);
    await writeAt(handle, piece, at + off);
    report(piece.byteLength);
  }
}

/** Quantises `info` [N, K] a piece of whole rows at a time: codes at `codesAt`, scales at `scalesAt`. */
async function quantizeTensor(
  ckpt: Checkpoint,
  info: TensorInfo,
  key: string,
  format: QuantFormat,
  handle: FileHandle,
  codesAt: number,
  scalesAt: number,
  pieceBytes: number,
  report: (n: number) => void,
): Promise<void> {
  const dtype = ({ BF16: 'bf16', F16: 'f16', F32: 'f32' } as const)[info.dtype as 'BF16' | 'F16' | 'F32'] as
    SourceDType | undefined;
  if (!dtype)
    throw new CheckpointError(
      `${info.file}: tensor '${key}': dtype ${info.dtype} cannot be quantised (expected BF16, F16 or F32)`,
    );
  const layout = QUANT_FORMATS[format];
  const [N, K] = info.shape;
  const srcRow = K * itemSize(dtype);
  const per = Math.max(1, Math.floor(pieceBytes / srcRow));
  const raw = new Uint8Array(per * srcRow);
  const f32 = new Float32Array(per * K);
  const size = quantizedSize(layout, per, K);
  const q = { data: new Uint32Array(size.words), scales: new Uint16Array(size.halves) };
  const b = rowBytes(layout, K);
  for (let r0 = 0; r0 < N; r0 += per) {
    const rows = Math.min(per, N - r0);
    const piece = raw.subarray(0, rows * srcRow);
    await ckpt.readInto(info, r0 * srcRow, piece);
    try {
      quantizeRows(layout, widenToF32(dtype, piece, f32), rows, K, key, r0, q);
    } catch (e) {
      throw e instanceof InputError ? new CheckpointError(`${info.file}: ${e.message}`, { cause: e }) : e;
    }
    await writeAt(handle, new Uint8Array(q.data.buffer, 0, rows * b.data), codesAt + r0 * b.data);
    await writeAt(handle, new Uint8Array(q.scales.buffer, 0, rows * b.scales), scalesAt + r0 * b.scales);
    report(piece.byteLength);
  }
}

/** The index, when the source has one: the same shards, the new tensor names, the new total size. */
async function writeIndex(ckpt: Checkpoint, dir: string, shards: Map<string, Part[]>): Promise<void> {
  if (
    shards.size === 1 &&
    !(await stat(join(ckpt.dir, INDEX_FILE)).then(
      () => true,
      () => false,
    ))
  )
    return;
  const weightMap: Record<string, string> = {};
  let total = 0;
  for (const [file, parts] of shards) {
    const { sizes } = encodeHeader(parts);
    for (const [i, p] of parts.entries()) {
      weightMap[p.name] = basename(file);
      total += sizes[i];
    }
  }
  await writeFile(
    join(dir, INDEX_FILE),
    `${JSON.stringify({ metadata: { total_size: total }, weight_map: weightMap }, null, 2)}\n`,
  );
}

/** Configs, tokenizer, chat template, README…: every plain file of the folder but weights and the index. */
async function copyOtherFiles(src: string, dir: string): Promise<void> {
  for (const e of await readdir(src, { withFileTypes: true })) {
    if (e.name === INDEX_FILE || WEIGHT_FILE.test(e.name)) continue;
    const from = join(src, e.name);
    if ((e.isFile() || e.isSymbolicLink()) && (await stat(from)).isFile()) await copyFile(from, join(dir, e.name));
  }
}
