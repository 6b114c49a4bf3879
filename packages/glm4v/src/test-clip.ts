// The synthetic video of the tests that take video input: ffmpeg's `testsrc` pattern, made on the spot (Node only).

import { type SpawnSyncReturns, spawnSync } from 'node:child_process';

/** Whether ffmpeg is on PATH: the video tests skip without it. */
export const HAS_FFMPEG = spawnSync('ffmpeg', ['-version']).status === 0;

/** Writes an H.264 clip of ffmpeg's test pattern to `path`: `size` as 'WxH', `rate` frames per second, `seconds` long. */
export function makeTestClip(
  path: string,
  clip: { size: string; rate: number; seconds: number },
): SpawnSyncReturns<Buffer> {
  const source = `testsrc=size=${clip.size}:rate=${clip.rate}`;
  return spawnSync('ffmpeg', [
    '-v',
    'error',
    '-y',
    '-f',
    'lavfi',
    '-i',
    source,
    '-t',
    String(clip.seconds),
    '-pix_fmt',
    'yuv420p',
    path,
  ]);
}
