// Loading the model from a checkpoint folder: configs, strict scoped weights (every key used, none missing),
// streamed to the GPU with progress; on any failure or abort everything uploaded so far is freed.

import type { Device } from '@glm4v/core';
import { Checkpoint } from '../checkpoint/checkpoint.js';
import { checkWeightsFit, quantizedWeights } from '../checkpoint/plan.js';
import type { LoadOptions } from '../checkpoint/upload.js';
import { WeightLoader } from '../checkpoint/weight-loader.js';
import { type GenerationConfig, type Glm4vConfig, type PreprocessorConfig, readConfigs } from '../config.js';
import { type ModelFolder, asFolder } from '../files/folder.js';
import { Glm4vModel } from './glm4v.js';
import { type QuantRequest, RandomWeights } from './weight-source.js';

export interface LoadedModel {
  model: Glm4vModel;
  configs: { model: Glm4vConfig; generation: GenerationConfig; image: PreprocessorConfig; video: PreprocessorConfig };
}

/**
 * `dir`: a path under Node, a URL in a page, or any ModelFolder. Nothing is downloaded before the weights are known
 * to fit. `f16Matrices`: see Glm4vModel.build (default: where the tensor-core matmul wants them).
 */
export async function loadModel(
  dir: string | ModelFolder,
  device: Device,
  opts: LoadOptions & { f16Matrices?: boolean } = {},
): Promise<LoadedModel> {
  const folder = asFolder(dir);
  const configs = await readConfigs(folder);
  const ckpt = await Checkpoint.open(folder);
  const weights = new WeightLoader(ckpt, device, opts);
  let model: Glm4vModel | undefined;
  try {
    await checkWeightsFit(ckpt, device, {
      maxChunkBytes: opts.maxChunkBytes,
      quantized: quantizedWeights(ckpt, configs.model, opts.quantFormats),
    });
    model = await Glm4vModel.build(device, configs.model, weights.scope(''), { f16Matrices: opts.f16Matrices });
    weights.finish();
    return { model, configs };
  } catch (e) {
    model?.dispose(); // what the model made itself (the permuted downsample weight); the rest is the loader's
    weights.dispose();
    throw e;
  } finally {
    await ckpt.close();
  }
}

/** The model with random weights made on the GPU at the shapes of `config` (no checkpoint), linear weights in `quant`. */
export async function randomModel(
  device: Device,
  config: Glm4vConfig,
  opts: { seed?: number; quant?: QuantRequest } = {},
): Promise<Glm4vModel> {
  const weights = new RandomWeights(device, opts);
  try {
    return await Glm4vModel.build(device, config, weights);
  } catch (e) {
    weights.dispose();
    throw e;
  }
}
