// A model folder's weights: `model.safetensors.index.json` with its shards, or a single `model.safetensors`.
// Opening validates every shard's header and checks that every tensor the index names is in its shard; no tensor
// data is read. Shard names that leave the folder (absolute, `..`, links resolving outside) are refused, with one
// exception: a Hugging Face hub cache snapshot (`<repo>/snapshots/<rev>/`) links its files into `<repo>/blobs/`,
// so that folder is trusted too when the model folder is such a snapshot.

import { readFile, realpath } from 'node:fs/promises';
import { basename, dirname, isAbsolute, join, resolve, sep } from 'node:path';
import { CheckpointError } from '@glm4v/core';
import { SafetensorsFile, type TensorInfo } from './safetensors.js';
import { renameKey } from './renames.js';

export const INDEX_FILE = 'model.safetensors.index.json';
export const SINGLE_FILE = 'model.safetensors';

export class Checkpoint {
  readonly dir: string;
  /** Every tensor, keyed by its name after the rename table. */
  readonly tensors: ReadonlyMap<string, TensorInfo>;
  /** Sum of all tensors' byte lengths. */
  readonly totalBytes: number;
  /** The open shards, keyed by path. */
  readonly files: ReadonlyMap<string, SafetensorsFile>;

  private constructor(dir: string, tensors: Map<string, TensorInfo>, files: Map<string, SafetensorsFile>) {
    this.dir = dir;
    this.tensors = tensors;
    this.files = files;
    let total = 0;
    for (const t of tensors.values()) total += t.byteLength;
    this.totalBytes = total;
  }

  static async open(dir: string): Promise<Checkpoint> {
    const shown = resolve(dir);
    let real: string;
    try {
      real = await realpath(shown);
    } catch (e) {
      throw new CheckpointError(`${shown}: model folder not found: ${(e as Error).message}`, { cause: e });
    }
    const roots = await trustedRoots(real);
    const files = new Map<string, SafetensorsFile>();
    try {
      const raw = (await exists(join(real, INDEX_FILE)))
        ? await openIndexed(shown, real, roots, files)
        : await openSingle(shown, real, roots, files);
      return new Checkpoint(shown, applyRenames(raw), files);
    } catch (e) {
      await Promise.all([...files.values()].map((f) => f.close().catch(() => undefined)));
      throw e;
    }
  }

  /** The open shard holding `info`. */
  file(info: TensorInfo): SafetensorsFile {
    const f = this.files.get(info.file);
    if (!f) throw new CheckpointError(`${info.file}: not a shard of ${this.dir} (tensor '${info.name}')`);
    return f;
  }

  read(info: TensorInfo, start = 0, length = info.byteLength - start): Promise<Uint8Array> {
    return this.file(info).read(info, start, length);
  }

  readInto(info: TensorInfo, start: number, target: Uint8Array): Promise<void> {
    return this.file(info).readInto(info, start, target);
  }

  /** All tensors in storage order (shard by shard, by offset): the order that reads each file sequentially. */
  inFileOrder(): TensorInfo[] {
    return [...this.tensors.values()].sort((a, b) => (a.file === b.file ? a.offset - b.offset : a.file < b.file ? -1 : 1));
  }

  async close(): Promise<void> {
    await Promise.all([...this.files.values()].map((f) => f.close()));
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await realpath(path);
    return true;
  } catch {
    return false;
  }
}

/** The model folder, plus `<repo>/blobs` when the folder is a hub cache snapshot `<repo>/snapshots/<rev>`. */
async function trustedRoots(real: string): Promise<string[]> {
  const roots = [real];
  if (basename(dirname(real)) === 'snapshots') {
    const blobs = join(dirname(dirname(real)), 'blobs');
    try {
      roots.push(await realpath(blobs));
    } catch {
      // not a hub cache after all
    }
  }
  return roots;
}

/** The path of a file the checkpoint names, refused when it leaves the model folder. */
async function resolveInside(shown: string, real: string, roots: string[], name: unknown, referrer: string): Promise<string> {
  const bad = (why: string) => new CheckpointError(`${referrer}: shard ${JSON.stringify(name)} ${why}`);
  if (typeof name !== 'string' || name.length === 0 || name.includes('\0')) throw bad('is not a valid file name');
  if (isAbsolute(name) || /^[a-zA-Z]:/.test(name) || name.startsWith('\\')) throw bad(`is an absolute path; shards must lie inside the model folder ${shown}`);
  if (name.split(/[\\/]/).includes('..')) throw bad(`uses '..' to leave the model folder ${shown}`);
  let target: string;
  try {
    target = await realpath(join(real, name));
  } catch (e) {
    throw bad(`is missing: ${join(shown, name)} does not exist (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  if (!roots.some((r) => target === r || target.startsWith(r.endsWith(sep) ? r : r + sep))) {
    throw bad(`resolves to ${target}, outside the model folder ${shown} (a link pointing outside is refused)`);
  }
  return join(shown, name);
}

async function openShard(path: string, files: Map<string, SafetensorsFile>): Promise<SafetensorsFile> {
  let f = files.get(path);
  if (!f) {
    f = await SafetensorsFile.open(path);
    files.set(path, f);
  }
  return f;
}

async function openSingle(shown: string, real: string, roots: string[], files: Map<string, SafetensorsFile>): Promise<TensorInfo[]> {
  if (!(await exists(join(real, SINGLE_FILE)))) {
    throw new CheckpointError(`${shown}: no ${INDEX_FILE} and no ${SINGLE_FILE}: not a safetensors model folder`);
  }
  const path = await resolveInside(shown, real, roots, SINGLE_FILE, shown);
  return [...(await openShard(path, files)).tensors.values()];
}

async function readIndex(path: string): Promise<Map<string, string>> {
  let json: unknown;
  try {
    json = JSON.parse(await readFile(path, 'utf8'));
  } catch (e) {
    throw new CheckpointError(`${path}: cannot read the index as JSON: ${(e as Error).message}`, { cause: e });
  }
  const map = (json as { weight_map?: unknown } | null)?.weight_map;
  if (typeof map !== 'object' || map === null || Array.isArray(map)) {
    throw new CheckpointError(`${path}: "weight_map" must be an object of tensor name → shard file, got ${JSON.stringify(map)}`);
  }
  const out = new Map<string, string>();
  for (const [name, shard] of Object.entries(map)) {
    if (typeof shard !== 'string') throw new CheckpointError(`${path}: weight_map['${name}'] must be a file name, got ${JSON.stringify(shard)}`);
    out.set(name, shard);
  }
  return out;
}

async function openIndexed(shown: string, real: string, roots: string[], files: Map<string, SafetensorsFile>): Promise<TensorInfo[]> {
  const indexPath = await resolveInside(shown, real, roots, INDEX_FILE, shown);
  const weightMap = await readIndex(indexPath);
  const shardPaths = new Map<string, string>();
  for (const shard of new Set(weightMap.values())) shardPaths.set(shard, await resolveInside(shown, real, roots, shard, indexPath));
  for (const path of shardPaths.values()) await openShard(path, files);
  const out = new Map<string, TensorInfo>();
  for (const [name, shard] of weightMap) {
    const path = shardPaths.get(shard)!;
    const info = files.get(path)!.tensors.get(name);
    if (!info) throw new CheckpointError(`${indexPath}: tensor '${name}' is mapped to '${shard}', but ${path} does not contain it`);
    out.set(name, info);
  }
  // Tensors a shard holds beyond the index still count (and are reported unused unless the model takes them).
  for (const f of files.values()) for (const [name, info] of f.tensors) if (!out.has(name)) out.set(name, info);
  return [...out.values()];
}

function applyRenames(infos: TensorInfo[]): Map<string, TensorInfo> {
  const out = new Map<string, TensorInfo>();
  for (const info of infos) {
    const name = renameKey(info.name);
    const prev = out.get(name);
    if (prev) {
      throw new CheckpointError(
        `${info.file}: tensor '${info.name}' and '${prev.sourceName ?? prev.name}' (${prev.file}) both stand for '${name}' after the key renames`,
      );
    }
    out.set(name, name === info.name ? info : { ...info, name, sourceName: info.name });
  }
  return out;
}
