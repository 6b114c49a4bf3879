// Reading a model folder's small text files (config.json, tokenizer.json, chat_template.jinja, …). Failures are
// ConfigErrors naming the file; a missing optional file is undefined.

import { readFile } from 'node:fs/promises';
import { ConfigError } from '@glm4v/core';

/** Text of `path`; undefined when it does not exist and is not `required`. */
export async function readTextFile(path: string, required: boolean): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8');
  } catch (e) {
    const missing = (e as NodeJS.ErrnoException).code === 'ENOENT';
    if (missing && !required) return undefined;
    throw new ConfigError(`${path}: cannot read: ${missing ? 'file not found' : (e as Error).message}`, { cause: e });
  }
}

/** JSON of `text` read from `path`; a ConfigError naming the file when it does not parse. */
export function parseJson(text: string, path: string): unknown {
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new ConfigError(`${path}: invalid JSON: ${(e as Error).message}`, { cause: e });
  }
}

/** Parsed JSON of `path`; undefined when it does not exist and is not `required`. */
export async function readJsonFile(path: string, required: boolean): Promise<unknown> {
  const text = await readTextFile(path, required);
  return text === undefined ? undefined : parseJson(text, path);
}
