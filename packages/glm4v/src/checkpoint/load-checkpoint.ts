// Every tensor of a checkpoint on the GPU, without a model: for users who want the weights themselves.

import type { ChunkedTensor, Device } from '@glm4v/core';
import { type Glm4vConfig, readConfigs } from '../config.js';
import { type ModelFolder, asFolder } from '../files/folder.js';
import { Checkpoint } from './checkpoint.js';
import { checkWeightsFit } from './plan.js';
import type { LoadOptions } from './upload.js';
import { WeightLoader } from './weight-loader.js';

export interface LoadedCheckpoint {
  config: Glm4vConfig;
  /** Every tensor by name (after the rename table), as row-chunked matrices (a 0-d tensor as shape [1]). */
  tensors: Map<string, ChunkedTensor>;
  /** Frees every tensor. */
  dispose(): void;
}

/**
 * Reads and validates the configs and shard headers, checks that the weights fit the device, then streams every
 * tensor to the GPU in storage order (shard by shard, so each file is read sequentially). On failure or abort
 * everything uploaded so far is freed before the error is thrown.
 */
export async function loadCheckpoint(
  dir: string | ModelFolder,
  device: Device,
  opts: LoadOptions = {},
): Promise<LoadedCheckpoint> {
  const folder = asFolder(dir);
  const { model: config } = await readConfigs(folder);
  const ckpt = await Checkpoint.open(folder);
  const loader = new WeightLoader(ckpt, device, opts);
  const tensors = new Map<string, ChunkedTensor>();
  try {
    await checkWeightsFit(ckpt, device, { maxChunkBytes: opts.maxChunkBytes });
    const root = loader.scope('');
    for (const info of ckpt.inFileOrder()) {
      tensors.set(
        info.name,
        await root.matrix(info.name, info.shape, info.shape.length === 0 ? { as: [1] } : undefined),
      );
    }
    loader.finish();
    await loader.flush();
  } catch (e) {
    loader.dispose();
    throw e;
  } finally {
    await ckpt.close();
  }
  return { config, tensors, dispose: () => loader.dispose() };
}
