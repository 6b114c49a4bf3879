// Videos → vision-tower input (docs/model.md#video; Glm4vVideoProcessor.sample_frames and Glm4vProcessor's timestamps).
// Frames come from the `ffprobe` and `ffmpeg` programs (an optional runtime dependency): ffprobe for the frame
// rate and count, one ffmpeg run that streams raw RGB frames, of which only the sampled ones are kept, each
// resized as it arrives (so memory stays within the smart_resize budget, not the source's size).
// Frames are read as stored (no display-matrix rotation), like the reference's PyAV/decord readers.

import { spawn } from 'node:child_process';
import { stat } from 'node:fs/promises';
import { InputError } from '@glm4v/core';
import { checkPreprocessorConfig, patchify } from './patchify.js';
import { resizeBicubic } from './resample.js';
import { roundHalfEven, smartResize } from './smart-resize.js';
import type { FrameSampling, PreparedVideo, PreprocessorConfig, RgbImage } from './types.js';

/** Sampling rate of the processor (frames per second) and the duration beyond which it samples a fixed count. */
export const VIDEO_SAMPLE_FPS = 2;
export const VIDEO_MAX_DURATION = 300;

export interface VideoMetadata {
  /** Frames per second of the stream (undefined when unknown). */
  fps?: number;
  totalFrames: number;
  /** Seconds; derived from totalFrames / fps when not given. */
  duration?: number;
  width: number;
  height: number;
}

export interface VideoOptions {
  /** ffmpeg / ffprobe programs (default: `$GLM4V_FFMPEG` / `$GLM4V_FFPROBE`, else found on PATH). */
  ffmpeg?: string;
  ffprobe?: string;
}

/**
 * Frame indices to sample (Glm4vVideoProcessor.sample_frames): `fps` per second while that stays within
 * `maxFrames`, else `maxFrames` evenly spaced targets; duplicates dropped keeping the first; an odd count repeats
 * the last index. The defaults are the processor's: 2 per second up to 300 s, else 600 frames.
 */
export function sampleFrameIndices(
  meta: Pick<VideoMetadata, 'fps' | 'totalFrames' | 'duration'>,
  sampling: FrameSampling = {},
): number[] {
  const total = meta.totalFrames;
  if (!Number.isInteger(total) || total < 1) throw new InputError(`video has no frames (frame count ${total})`);
  const fps = meta.fps || 2.0;
  const rate = sampling.fps ?? VIDEO_SAMPLE_FPS;
  const maxFrames = sampling.maxFrames ?? Math.trunc(VIDEO_MAX_DURATION * rate);
  const maxIdx = total - 1;
  const duration = meta.duration || roundHalfEven(maxIdx / fps) + 1;
  let idx: number[];
  if (duration <= maxFrames / rate) {
    const n = Math.floor(duration * rate);
    idx = Array.from({ length: n }, (_, i) => Math.min(maxIdx, Math.ceil((i * fps) / rate)));
  } else {
    const num = maxFrames;
    if (num >= total) {
      idx = Array.from({ length: total }, (_, i) => i);
    } else {
      const step = duration / (num - 1); // numpy.linspace(0, duration, num), endpoint included exactly
      idx = Array.from({ length: num }, (_, i) =>
        Math.min(maxIdx, Math.ceil((i === num - 1 ? duration : i * step) * fps)),
      );
    }
  }
  const uniq = [...new Set(idx)];
  if (uniq.length === 0)
    throw new InputError(
      `video is too short to sample: duration ${duration.toFixed(3)} s gives no frame at ${rate} fps`,
    );
  if (uniq.length % 2 === 1) uniq.push(uniq[uniq.length - 1]);
  return uniq;
}

function program(name: 'ffmpeg' | 'ffprobe', opts: VideoOptions): string {
  return opts[name] ?? process.env[name === 'ffmpeg' ? 'GLM4V_FFMPEG' : 'GLM4V_FFPROBE'] ?? name;
}

function missingProgram(prog: string): InputError {
  return new InputError(
    `video input needs the '${prog}' program, which was not found: install ffmpeg (Debian/Ubuntu: apt-get install ffmpeg; macOS: brew install ffmpeg) or set GLM4V_FFMPEG / GLM4V_FFPROBE`,
  );
}

/** Run a program to completion, collecting stdout; ENOENT → InputError naming the program. */
function run(prog: string, args: string[], what: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(prog, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    let err = '';
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => (err += b.toString()));
    child.on('error', (e: NodeJS.ErrnoException) =>
      reject(
        e.code === 'ENOENT'
          ? missingProgram(prog)
          : new InputError(`${what}: ${prog} failed: ${e.message}`, { cause: e }),
      ),
    );
    child.on('close', (code) => {
      if (code === 0) resolve(Buffer.concat(out).toString('utf8'));
      else
        reject(
          new InputError(
            `${what}: ${prog} exited with status ${code}: ${err.trim().split('\n').slice(-2).join(' / ') || 'no message'}`,
          ),
        );
    });
  });
}

function rate(s: unknown): number | undefined {
  if (typeof s !== 'string') return undefined;
  const [a, b] = s.split('/').map(Number);
  const v = b === undefined ? a : a / b;
  return Number.isFinite(v) && v > 0 ? v : undefined;
}

/** Stream metadata from ffprobe: coded size, average frame rate, frame count (counted from packets if absent). */
export async function probeVideo(path: string, opts: VideoOptions = {}): Promise<VideoMetadata> {
  const what = `video file '${path}'`;
  try {
    if (!(await stat(path)).isFile()) throw new InputError(`${what}: not a regular file`);
  } catch (e) {
    if (e instanceof InputError) throw e;
    throw new InputError(
      `${what}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : `cannot be read (${(e as Error).message})`}`,
      { cause: e },
    );
  }
  const args = [
    '-v',
    'error',
    '-select_streams',
    'v:0',
    '-count_packets',
    '-show_entries',
    'stream=width,height,avg_frame_rate,r_frame_rate,nb_frames,nb_read_packets',
    '-of',
    'json',
    path,
  ];
  const json = JSON.parse(await run(program('ffprobe', opts), args, what)) as { streams?: Record<string, unknown>[] };
  const s = json.streams?.[0];
  if (!s) throw new InputError(`${what}: no video stream`);
  const width = Number(s.width);
  const height = Number(s.height);
  const nb = Number(s.nb_frames);
  const totalFrames = Number.isInteger(nb) && nb > 0 ? nb : Number(s.nb_read_packets);
  if (!(width > 0 && height > 0)) throw new InputError(`${what}: video stream has no size`);
  if (!(totalFrames > 0)) throw new InputError(`${what}: video stream has no frames`);
  const fps = rate(s.avg_frame_rate) ?? rate(s.r_frame_rate);
  // As the reference's readers (PyAV, decord): duration = frame count / frame rate.
  return { fps, totalFrames, duration: fps ? totalFrames / fps : undefined, width, height };
}

/** Decode the frames at `indices` (ascending) with ffmpeg as RGB, handing each to `onFrame` as it arrives. */
function readFrames(
  path: string,
  meta: VideoMetadata,
  indices: readonly number[],
  onFrame: (k: number, img: RgbImage) => void,
  opts: VideoOptions,
): Promise<void> {
  const what = `video file '${path}'`;
  const prog = program('ffmpeg', opts);
  const frameBytes = meta.width * meta.height * 3;
  const wanted = new Map<number, number[]>(); // source frame index → positions in `indices`
  indices.forEach((f, k) => wanted.set(f, [...(wanted.get(f) ?? []), k]));
  const last = Math.max(...indices);
  return new Promise((resolve, reject) => {
    const args = [
      '-v',
      'error',
      '-nostdin',
      '-noautorotate',
      '-i',
      path,
      '-map',
      '0:v:0',
      '-an',
      '-sn',
      '-dn',
      '-vsync',
      'passthrough',
      '-f',
      'rawvideo',
      '-pix_fmt',
      'rgb24',
      'pipe:1',
    ];
    const child = spawn(prog, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let frame = Buffer.alloc(frameBytes);
    let filled = 0;
    let n = 0;
    let done = false;
    let err = '';
    const finish = (e?: Error) => {
      if (done) return;
      done = true;
      child.kill();
      if (e) reject(e);
      else resolve();
    };
    child.stderr.on('data', (b: Buffer) => (err += b.toString()));
    child.stdout.on('data', (chunk: Buffer) => {
      let off = 0;
      while (off < chunk.length && !done) {
        const take = Math.min(frameBytes - filled, chunk.length - off);
        chunk.copy(frame, filled, off, off + take);
        filled += take;
        off += take;
        if (filled < frameBytes) break;
        const ks = wanted.get(n);
        if (ks) {
          try {
            for (const k of ks)
              onFrame(k, {
                data: new Uint8Array(frame.buffer, frame.byteOffset, frameBytes),
                height: meta.height,
                width: meta.width,
              });
          } catch (e) {
            finish(e as Error);
            return;
          }
          frame = Buffer.alloc(frameBytes);
        }
        filled = 0;
        if (n++ === last) finish();
      }
    });
    child.on('error', (e: NodeJS.ErrnoException) =>
      finish(
        e.code === 'ENOENT'
          ? missingProgram(prog)
          : new InputError(`${what}: ${prog} failed: ${e.message}`, { cause: e }),
      ),
    );
    child.on('close', (code) => {
      if (done) return;
      const msg = err.trim().split('\n').slice(-2).join(' / ');
      finish(
        new InputError(
          `${what}: ffmpeg delivered ${n} frames, expected at least ${last + 1}${code ? ` (exit status ${code}: ${msg})` : ''}`,
        ),
      );
    });
  });
}

/** A video file → sampled, resized, normalised frames in temporal-patch pairs, with one timestamp per pair. */
export async function preprocessVideo(
  path: string,
  cfg: PreprocessorConfig,
  opts: VideoOptions & FrameSampling = {},
): Promise<PreparedVideo> {
  checkPreprocessorConfig(cfg, 'video preprocessor config');
  const meta = await probeVideo(path, opts);
  let indices: number[];
  try {
    indices = sampleFrameIndices(meta, opts);
  } catch (e) {
    throw new InputError(`video file '${path}': ${(e as Error).message}`, { cause: e });
  }
  const factor = cfg.patchSize * cfg.mergeSize;
  let size: { h: number; w: number };
  try {
    size = cfg.doResize
      ? smartResize(indices.length, meta.height, meta.width, {
          factor,
          minPixels: cfg.minPixels,
          maxPixels: cfg.maxPixels,
          temporalFactor: cfg.temporalPatchSize,
        })
      : { h: meta.height, w: meta.width };
  } catch (e) {
    throw new InputError(`video file '${path}': ${(e as Error).message}`, { cause: e });
  }
  const frames = new Array<RgbImage>(indices.length);
  await readFrames(
    path,
    meta,
    indices,
    (k, img) => {
      frames[k] = size.h === img.height && size.w === img.width ? img : resizeBicubic(img, size.h, size.w);
    },
    opts,
  );
  // Pad to a multiple of the temporal patch (the processor repeats the last frame); sampling already gives an even count.
  while (frames.length % cfg.temporalPatchSize !== 0) frames.push(frames[frames.length - 1]);
  const gt = frames.length / cfg.temporalPatchSize;
  const grid: [number, number, number] = [gt, size.h / cfg.patchSize, size.w / cfg.patchSize];
  const fps = meta.fps ?? 24; // the processor's fallback for timestamps
  const timestamps = Array.from({ length: gt }, (_, g) =>
    Math.trunc(indices[Math.min(g * 2, indices.length - 1)] / fps),
  );
  let pixelValues: Float32Array;
  try {
    pixelValues = patchify(frames, cfg);
  } catch (e) {
    throw new InputError(`video file '${path}': ${(e as Error).message}`, { cause: e });
  }
  return { pixelValues, grids: [grid], timestamps };
}
