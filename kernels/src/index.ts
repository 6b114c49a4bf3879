export { prelude, variantTag, type ActDType, type WeightDType } from './prelude.js';
export { grid1d } from './grid.js';
export { rmsNorm, layerNorm, type RmsNormOptions } from './norms.js';
export { fillRandom } from './random.js';
export { argmax, sample, createSamplerState, resetSamplerState, markPresent, samplerUniform, philox2x32, SAMPLING_LIMITS, type SamplingOptions, type SamplerState } from './sampling.js';
