// What the loader reads a model from: a folder of named files, each read by position. Node reads a directory
// (files/node.ts); a page reads a folder the user picked (browser/folders.ts) or a base URL with HTTP Range
// requests (files/http.ts, which Node can use too). Everything above this interface (the safetensors reader, the
// checkpoint index, configs, tokenizer, chat template) is the same code on every platform.

import { ConfigError } from '@glm4v/core';
import { openFolder } from '#platform';

/** One file: its size when opened, and positioned reads. */
export interface FileSource {
  /** Where the file is, for messages: a path or a URL. */
  readonly path: string;
  /** Bytes in the file when it was opened. */
  readonly size: number;
  /** Reads up to `target.byteLength` bytes at `position` into `target`; the count read, 0 at the end of the file. */
  read(target: Uint8Array, position: number): Promise<number>;
  close(): Promise<void>;
}

/** A file being written (safetensors writer, under Node). */
export interface FileSink {
  /** Writes some of `bytes` at `position`; the count written. */
  write(bytes: Uint8Array, position: number): Promise<number>;
  close(): Promise<void>;
}

/** A model folder: config files, tokenizer, chat template, safetensors shards and their index. */
export interface ModelFolder {
  /** Where the folder is, for messages: a path, a URL or the name of a picked folder. */
  readonly location: string;
  /** How a file of the folder is named in messages. */
  path(name: string): string;
  /**
   * The file `name` (a relative name without `..`), or undefined when the folder has no such file. Rejects, with
   * the reason as the message, when the file exists but may not or cannot be read.
   */
  open(name: string): Promise<FileSource | undefined>;
  /** The UTF-8 text of a small file, or undefined when the folder has no such file. */
  readText(name: string): Promise<string | undefined>;
}

/** A folder given as a string is a directory under Node and a URL (relative to the page) in a browser. */
export function asFolder(where: string | ModelFolder): ModelFolder {
  return typeof where === 'string' ? openFolder(where) : where;
}

/** Text of `name`; undefined when it does not exist and is not `required`. Failures are ConfigErrors naming the file. */
export async function readTextFile(folder: ModelFolder, name: string, required: boolean): Promise<string | undefined> {
  const path = folder.path(name);
  let text: string | undefined;
  try {
    text = await folder.readText(name);
  } catch (e) {
    throw new ConfigError(`${path}: cannot read: ${(e as Error).message}`, { cause: e });
  }
  if (text === undefined && required) throw new ConfigError(`${path}: cannot read: file not found`);
  return text;
}

/** JSON of `text` read from `path`; a ConfigError naming the file when it does not parse. */
export function parseJson(text: string, path: string): unknown {
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new ConfigError(`${path}: invalid JSON: ${(e as Error).message}`, { cause: e });
  }
}

/** Parsed JSON of `name`; undefined when it does not exist and is not `required`. */
export async function readJsonFile(folder: ModelFolder, name: string, required: boolean): Promise<unknown> {
  const text = await readTextFile(folder, name, required);
  return text === undefined ? undefined : parseJson(text, folder.path(name));
}

/** All bytes of a file (small files only: an index, a config). */
export async function readAll(file: FileSource): Promise<Uint8Array> {
  const out = new Uint8Array(file.size);
  let done = 0;
  while (done < out.byteLength) {
    const n = await file.read(out.subarray(done), done);
    if (n === 0) throw new Error(`${file.path}: the file ended after ${done} of ${file.size} bytes`);
    done += n;
  }
  return out;
}
