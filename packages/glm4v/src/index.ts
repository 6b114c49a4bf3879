export * from './config.js';
export { SafetensorsFile, DTYPE_SIZES, MAX_HEADER_BYTES, type SafetensorsDType, type TensorInfo } from './checkpoint/safetensors.js';
export { writeSafetensors, type TensorData, type TensorStream } from './checkpoint/writer.js';
export { Checkpoint, INDEX_FILE, SINGLE_FILE } from './checkpoint/checkpoint.js';
export { KEY_RENAMES, renameKey } from './checkpoint/renames.js';
export { type LoadOptions, type LoadProgress, DEFAULT_STAGING_BYTES } from './checkpoint/upload.js';
export { WeightLoader, type WeightScope, type GetOptions, type MatrixOptions } from './checkpoint/weights.js';
export { loadCheckpoint, type LoadedCheckpoint } from './checkpoint/load.js';
