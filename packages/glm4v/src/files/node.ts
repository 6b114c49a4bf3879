// Model folders and files on the local file system (Node). Shards must resolve, through links, inside the
// folder, with one exception: a Hugging Face hub cache snapshot (`<repo>/snapshots/<rev>/`) links its files into
// `<repo>/blobs/`, so that folder is trusted too when the model folder is such a snapshot.

import { open, readFile, realpath } from 'node:fs/promises';
import { basename, dirname, join, resolve, sep } from 'node:path';
import { CheckpointError } from '@glm4v/core';
import type { FileSink, FileSource, ModelFolder } from './folder.js';

/** A file opened for positioned reads. Rejects with the system's message when it cannot be opened. */
export async function openFile(path: string): Promise<FileSource> {
  const handle = await open(path, 'r');
  try {
    const { size } = await handle.stat();
    if (!Number.isSafeInteger(size)) throw new Error(`file size ${size} is beyond 2^53 bytes`);
    return {
      path,
      size,
      read: async (target, position) => (await handle.read(target, 0, target.byteLength, position)).bytesRead,
      close: () => handle.close(),
    };
  } catch (e) {
    await handle.close().catch(() => undefined);
    throw e;
  }
}

/** A file created (or truncated) for writing. */
export async function createFile(path: string): Promise<FileSink> {
  const handle = await open(path, 'w');
  return {
    write: async (bytes, position) => (await handle.write(bytes, 0, bytes.byteLength, position)).bytesWritten,
    close: () => handle.close(),
  };
}

export function openFolder(dir: string): ModelFolder {
  return new NodeFolder(dir);
}

export class NodeFolder implements ModelFolder {
  readonly location: string;
  private roots: Promise<string[]> | undefined;

  constructor(dir: string) {
    this.location = resolve(dir);
  }

  path(name: string): string {
    return join(this.location, name);
  }

  async open(name: string): Promise<FileSource | undefined> {
    const roots = await this.trustedRoots();
    let target: string;
    try {
      target = await realpath(join(roots[0], name));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw e;
    }
    if (!roots.some((r) => target === r || target.startsWith(r.endsWith(sep) ? r : r + sep))) {
      throw new Error(
        `resolves to ${target}, outside the model folder ${this.location} (a link pointing outside is refused)`,
      );
    }
    return openFile(this.path(name));
  }

  async readText(name: string): Promise<string | undefined> {
    try {
      return await readFile(this.path(name), 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw e;
    }
  }

  /** The folder's real path, plus `<repo>/blobs` when the folder is a hub cache snapshot `<repo>/snapshots/<rev>`. */
  private trustedRoots(): Promise<string[]> {
    this.roots ??= (async () => {
      let real: string;
      try {
        real = await realpath(this.location);
      } catch (e) {
        throw new CheckpointError(`${this.location}: model folder not found: ${(e as Error).message}`, { cause: e });
      }
      const roots = [real];
      if (basename(dirname(real)) === 'snapshots') {
        const blobs = await realpath(join(dirname(dirname(real)), 'blobs')).catch(() => undefined);
        if (blobs) roots.push(blobs);
      }
      return roots;
    })();
    return this.roots;
  }
}
