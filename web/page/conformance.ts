// The page the browser tests drive (web/browser.test.ts): `window.glm4v` runs a conformance case on the page's
// WebGPU device (logits, greedy tokens, taps, to be compared in Node against the reference dumps), loads a
// checkpoint to report how it fails, decodes an image with the browser's decoder, and tries a video.

import { Device, Glm4vError } from '@glm4v/runtime';
import {
  type Glm4vModel,
  HttpFolder,
  type LoadOptions,
  PREPROCESSOR_DEFAULTS,
  computeLogits,
  decodeImage,
  loadModel,
  preprocessVideo,
  readLogitsInputs,
} from '@glm4v/runtime/internal';

let device: Promise<Device> | undefined;
const models = new Map<string, Promise<Glm4vModel>>();

function gpu(): Promise<Device> {
  device ??= Device.create();
  return device;
}

/** A conformance case: prefill logits and taps, 8 greedy tokens through the decode path. */
async function runCase(checkpoint: string, caseFile: string) {
  const d = await gpu();
  let m = models.get(checkpoint);
  if (!m) models.set(checkpoint, (m = loadModel(checkpoint, d).then((r) => r.model)));
  const r = await computeLogits(await m, await readLogitsInputs(caseFile), { greedy: 8, taps: true });
  const taps = Object.fromEntries(Object.entries(r.taps ?? {}).map(([k, v]) => [k, Array.from(v)]));
  return {
    adapter: d.describe(),
    logits: Array.from(r.logits),
    shape: r.shape,
    greedy: Array.from(r.greedyTokens ?? []),
    taps,
    ropeDelta: r.ropeDelta,
  };
}

/** Loads a checkpoint folder URL; its error as { name, code, message } when it fails, else what was loaded. */
async function load(url: string, opts: LoadOptions = {}) {
  const d = await gpu();
  const before = d.pool.stats.bytesInUse;
  const progress: number[] = [];
  try {
    const { model } = await loadModel(new HttpFolder(url), d, {
      ...opts,
      onProgress: (p) => progress.push(p.bytesDone),
    });
    model.dispose();
    return { ok: true, progress, leaked: d.pool.stats.bytesInUse - before };
  } catch (e) {
    const err = e as Glm4vError;
    return {
      ok: false,
      name: err.name,
      code: err.code,
      message: err.message,
      isGlm4vError: e instanceof Glm4vError,
      progress,
      leaked: d.pool.stats.bytesInUse - before,
    };
  }
}

async function decode(url: string) {
  const img = await decodeImage({ path: url });
  return { width: img.width, height: img.height, rgb: Array.from(img.data) };
}

/** Video input in a page: its error. */
async function video(url: string) {
  return preprocessVideo(url, PREPROCESSOR_DEFAULTS.video).then(
    () => ({ name: 'none', message: 'accepted' }),
    (e: Error) => ({ name: e.name, message: e.message }),
  );
}

(window as unknown as { glm4v: object }).glm4v = { runCase, load, decode, video, ready: true };
