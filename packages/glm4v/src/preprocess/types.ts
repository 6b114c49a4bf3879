// Types shared by the preprocessing modules.
// PreprocessorConfig mirrors `preprocessor_config.json` (see config.ts, which parses and validates it); it is
// declared structurally here so that preprocessing depends on the shape only.

/** `preprocessor_config.json` / `video_preprocessor_config.json`, parsed (spec §2.4). */
export interface PreprocessorConfig {
  /** `size.shortest_edge`: a pixel-count lower bound (t·h·w), not an edge. */
  minPixels: number;
  /** `size.longest_edge`: a pixel-count upper bound (t·h·w). */
  maxPixels: number;
  patchSize: number;
  temporalPatchSize: number;
  mergeSize: number;
  imageMean: readonly [number, number, number];
  imageStd: readonly [number, number, number];
  rescaleFactor: number;
  doResize: boolean;
  doRescale: boolean;
  doNormalize: boolean;
  doConvertRgb: boolean;
}

/** An image given by path or as the bytes of an encoded file (PNG, JPEG, WebP, GIF, TIFF, HEIF/AVIF). */
export interface ImageInput {
  path?: string;
  /** Encoded file bytes (a Buffer works). */
  data?: Uint8Array;
}

export interface PreparedImages {
  /** [N, C·T·P·P] = [N, 1176] patch vectors in merge-window order, images concatenated in order (spec §4.3). */
  pixelValues: Float32Array;
  /** (t, gh, gw) per image, in patches (t = 1 for a still image). */
  grids: [number, number, number][];
  /** Rows of pixelValues per image (t·gh·gw). */
  patchesPerImage: number[];
}

export interface PreparedVideo extends PreparedImages {
  /** Integer seconds (truncated) of the first frame of each temporal patch (spec §4.4 step 4). */
  timestamps: number[];
}

/** 8-bit interleaved RGB pixels, row-major [height][width][3]. */
export interface RgbImage {
  data: Uint8Array;
  height: number;
  width: number;
}
