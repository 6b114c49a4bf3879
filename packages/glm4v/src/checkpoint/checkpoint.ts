// A model folder's weights: `model.safetensors.index.json` with its shards, or a single `model.safetensors`.
// Opening validates every shard's header and checks that every tensor the index names is in its shard; no tensor
// data is read. Shard names that leave the folder (absolute, `..`) are refused here; where the folder itself
// refuses a file (under Node: a link resolving outside it, see files/node.ts) its reason is reported.

import { CheckpointError } from '@glm4v/core';
import { type FileSource, type ModelFolder, asFolder, readAll } from '../files/folder.js';
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

  /** A folder: a path under Node, a URL in a page, or any ModelFolder (a picked folder, an HttpFolder). */
  static async open(where: string | ModelFolder): Promise<Checkpoint> {
    const folder = asFolder(where);
    const files = new Map<string, SafetensorsFile>();
    try {
      const index = await openInside(folder, INDEX_FILE, folder.location);
      const raw = index ? await openIndexed(folder, index, files) : await openSingle(folder, files);
      return new Checkpoint(folder.location, applyRenames(raw), files);
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
    return [...this.tensors.values()].sort((a, b) =>
      a.file === b.file ? a.offset - b.offset : a.file < b.file ? -1 : 1,
    );
  }

  async close(): Promise<void> {
    await Promise.all([...this.files.values()].map((f) => f.close()));
  }
}

/** The file `name` of the folder (undefined when absent), refused when its name leaves the folder. */
async function openInside(folder: ModelFolder, name: unknown, referrer: string): Promise<FileSource | undefined> {
  const bad = (why: string) => new CheckpointError(`${referrer}: shard ${JSON.stringify(name)} ${why}`);
  if (typeof name !== 'string' || name.length === 0 || name.includes('\0')) throw bad('is not a valid file name');
  if (name.startsWith('/') || /^[a-zA-Z]:/.test(name) || name.startsWith('\\') || /^[a-z][a-z0-9+.-]*:/i.test(name)) {
    throw bad(`is an absolute path; shards must lie inside the model folder ${folder.location}`);
  }
  if (name.split(/[\\/]/).includes('..')) throw bad(`uses '..' to leave the model folder ${folder.location}`);
  try {
    return await folder.open(name);
  } catch (e) {
    if (e instanceof CheckpointError) throw e;
    throw bad(`${(e as Error).message}`);
  }
}

/** A shard the checkpoint needs: open and validated once, a CheckpointError when missing. */
async function openShard(
  folder: ModelFolder,
  name: string,
  referrer: string,
  files: Map<string, SafetensorsFile>,
): Promise<SafetensorsFile> {
  const path = folder.path(name);
  let f = files.get(path);
  if (!f) {
    const source = await openInside(folder, name, referrer);
    if (!source)
      throw new CheckpointError(`${referrer}: shard ${JSON.stringify(name)} is missing: ${path} does not exist`);
    f = await SafetensorsFile.open(source);
    files.set(path, f);
  }
  return f;
}

async function openSingle(folder: ModelFolder, files: Map<string, SafetensorsFile>): Promise<TensorInfo[]> {
  const source = await openInside(folder, SINGLE_FILE, folder.location);
  if (!source)
    throw new CheckpointError(
      `${folder.location}: no ${INDEX_FILE} and no ${SINGLE_FILE}: not a safetensors model folder`,
    );
  const f = await SafetensorsFile.open(source);
  files.set(source.path, f);
  return [...f.tensors.values()];
}

async function readIndex(index: FileSource): Promise<Map<string, string>> {
  const path = index.path;
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder().decode(await readAll(index)));
  } catch (e) {
    throw new CheckpointError(`${path}: cannot read the index as JSON: ${(e as Error).message}`, { cause: e });
  } finally {
    await index.close();
  }
  const map = (json as { weight_map?: unknown } | null)?.weight_map;
  if (typeof map !== 'object' || map === null || Array.isArray(map)) {
    throw new CheckpointError(
      `${path}: "weight_map" must be an object of tensor name → shard file, got ${JSON.stringify(map)}`,
    );
  }
  const out = new Map<string, string>();
  for (const [name, shard] of Object.entries(map)) {
    if (typeof shard !== 'string')
      throw new CheckpointError(`${path}: weight_map['${name}'] must be a file name, got ${JSON.stringify(shard)}`);
    out.set(name, shard);
  }
  return out;
}

async function openIndexed(
  folder: ModelFolder,
  index: FileSource,
  files: Map<string, SafetensorsFile>,
): Promise<TensorInfo[]> {
  const indexPath = index.path;
  const weightMap = await readIndex(index);
  for (const shard of new Set(weightMap.values())) await openShard(folder, shard, indexPath, files);
  const out = new Map<string, TensorInfo>();
  for (const [name, shard] of weightMap) {
    const path = folder.path(shard);
    const info = files.get(path)!.tensors.get(name);
    if (!info)
      throw new CheckpointError(
        `${indexPath}: tensor '${name}' is mapped to '${shard}', but ${path} does not contain it`,
      );
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
