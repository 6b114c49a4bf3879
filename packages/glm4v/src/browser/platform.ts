// The platform seam, browser side (package.json "imports" #platform, condition "browser"): a folder or file named
// by a string is a URL (relative to the page) read with HTTP Range requests; images are decoded by the browser;
// video input is refused (Node reads it with ffmpeg).

import { InputError } from '@glm4v/core';
import type { FileSink, FileSource, ModelFolder } from '../files/folder.js';
import { HttpFile, HttpFolder } from '../files/http.js';
import type { FrameSampling, PreparedVideo, PreprocessorConfig } from '../preprocess/types.js';

export { decodeImage } from './decode-image.js';

export function openFolder(url: string): ModelFolder {
  return new HttpFolder(url);
}

export async function openFile(url: string): Promise<FileSource> {
  const f = await HttpFile.open(new URL(url, location.href).href);
  if (!f) throw new Error('HTTP 404: not found');
  return f;
}

export async function createFile(path: string): Promise<FileSink> {
  throw new InputError(`${path}: writing files is not supported in the browser build`);
}

export async function preprocessVideo(
  path: string,
  _cfg: PreprocessorConfig,
  _sampling?: FrameSampling,
): Promise<PreparedVideo> {
  throw new InputError(
    `video '${path}': video input is not supported in the browser build; give sampled frames as images, or use the Node build (ffmpeg)`,
  );
}
