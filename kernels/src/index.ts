export { prelude, variantTag, type ActDType, type WeightDType } from './prelude.js';
export { grid1d } from './grid.js';
export {
  isCpuAdapter,
  minSubgroupSize,
  maxSubgroupSize,
  hasSubgroupsOf,
  canBroadcast,
  canReduceWithSubgroups,
} from './adapter.js';
export { rmsNorm, rmsNormResidual, layerNorm } from './norms.js';
export { fillRandom } from './random.js';
export {
  argmax,
  sample,
  createSamplerState,
  setSamplerOptions,
  resetSamplerState,
  markPresent,
  samplerUniform,
  philox2x32,
  SAMPLING_LIMITS,
  type SamplingOptions,
  type SamplerState,
  type SamplerModes,
  type SamplingMode,
} from './sampling.js';
export {
  ropeText,
  ropeVision,
  ropeFrequencies,
  MAX_ROPE_FREQUENCIES,
  type RopeTextOptions,
  type RopeVisionOptions,
} from './rope.js';
export { siluMul, gelu, add, addInPlace } from './pointwise.js';
export { embedding, checkTokenIds, type EmbeddingOptions } from './embedding.js';
export { posEmbedBicubic, type PosEmbedOptions } from './posembed.js';
export { permuteDownsampleWeight, patchEmbed, downsample } from './patch_embed.js';
export {
  linear,
  matmul,
  matvec,
  linearVariant,
  selectLinearPreset,
  matmulWeightDType,
  LINEAR_PRESETS,
  MATVEC_MAX_ROWS,
  type LinearOptions,
  type LinearVariant,
  type LinearPreset,
  type LinearPresetName,
  type LinearWeight,
} from './matmul.js';
export { attentionDecode, decodeLanes, decodeMinChunk, type DecodeOptions } from './attention_decode.js';
export {
  attentionPrefill,
  attentionSegments,
  createKvCache,
  decodeSplits,
  selectAttentionPreset,
  selectPrefillAttentionPreset,
  ATTENTION_PRESETS,
  DECODE_MAX_SPLITS,
  type KvCache,
  type KvDType,
  type AttentionPreset,
  type AttentionPresetName,
  type PrefillOptions,
  type SegmentsOptions,
} from './attention.js';
export { toF16 } from './convert.js';
export { matvecPlan, MATVEC_FILL_WORKGROUPS, type MatvecPlan, type SplitKPreset } from './linear-common.js';
export {
  matrixShapeFor,
  subgroupMatrixBytes,
  subgroupMatrixDepth,
  type MatrixShape,
  type SubgroupMatrixPreset,
} from './matmul_subgroup_matrix.js';
export {
  QUANT_FORMATS,
  QuantizedMatrix,
  isQuantFormat,
  quantReader,
  blocksPerRow,
  rowBytes,
  wordsPerBlock,
  scaleWordsPerRow,
  type QuantFormat,
  type QuantLayout,
  type QuantChunk,
  type QuantizedRows,
} from './quant.js';
export { quantizeRows, dequantizeRows, quantizedSize, widenToF32, f16Bits, type SourceDType } from './quantize.js';
export {
  linearQuant,
  selectQuantPreset,
  QUANT_LINEAR_PRESETS,
  type QuantLinearVariant,
  type QuantLinearPreset,
  type QuantPresetName,
} from './matmul_quant.js';
export { ROW, ROW_FIELDS, ROWS_WGSL, rowsTable, checkRows, type RowValues } from './rows.js';
export { concatRows, concatVectors } from './concat.js';
