// Types shared by the preprocessing modules. PreprocessorConfig (preprocessor_config.json, docs/model.md#preprocessor-config) is parsed
// and validated in config.ts.

export type { PreprocessorConfig } from '../config.js';

/** An image given by path or as the bytes of an encoded file (PNG, JPEG, WebP, GIF, TIFF, HEIF/AVIF). */
export interface ImageInput {
  path?: string;
  /** Encoded file bytes (a Buffer works). */
  data?: Uint8Array;
}

export interface PreparedImages {
  /** [N, C·T·P·P] = [N, 1176] patch vectors in merge-window order, images concatenated in order (docs/model.md#patchify). */
  pixelValues: Float32Array;
  /** (t, gh, gw) per image, in patches (t = 1 for a still image). */
  grids: [number, number, number][];
}

export interface PreparedVideo extends PreparedImages {
  /** Integer seconds (truncated) of the first frame of each temporal patch (docs/model.md#video). */
  timestamps: number[];
}

/** How a video's frames are sampled (a request's fps and maxFrames). */
export interface FrameSampling {
  /** Frames sampled per second of video (default 2, the processor's). */
  fps?: number;
  /** Most frames sampled (default: 300 seconds' worth at `fps`, as the processor). */
  maxFrames?: number;
}

/** 8-bit interleaved RGB pixels, row-major [height][width][3]. */
export interface RgbImage {
  data: Uint8Array;
  height: number;
  width: number;
}
