// Builds the static demo site into a folder: the page and the in-page conformance runner bundled by esbuild for
// browsers (the "browser" condition picks @glm4v/runtime's browser build), the HTML and CSS, and the tiny demo
// checkpoint (random weights, made once by the runtime's demo.ts and cached) with its sample image.

import { copyFile, mkdir, readdir } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { demoCheckpoint } from '@glm4v/runtime/testing';

const here = dirname(fileURLToPath(import.meta.url));
/** The repository's web/ folder (this file is web/tools/build.ts, or web/dist/tools/build.js once compiled). */
export const WEB_DIR = basename(dirname(here)) === 'dist' ? join(here, '../..') : join(here, '..');
export const SITE_DIR = join(WEB_DIR, 'dist', 'site');
const PAGE_DIR = join(WEB_DIR, 'page');

export async function buildSite(out = SITE_DIR): Promise<string> {
  await mkdir(join(out, 'demo'), { recursive: true });
  await build({
    entryPoints: { app: join(PAGE_DIR, 'app.ts'), conformance: join(PAGE_DIR, 'conformance.ts') },
    outdir: out,
    bundle: true,
    format: 'esm',
    platform: 'browser',
    target: 'es2022',
    sourcemap: true,
    minify: true,
    logLevel: 'warning',
  });
  for (const f of ['index.html', 'conformance.html', 'style.css']) await copyFile(join(PAGE_DIR, f), join(out, f));
  const demo = await demoCheckpoint();
  for (const f of await readdir(demo)) await copyFile(join(demo, f), join(out, 'demo', f));
  return out;
}
