// Everything below the public API, for the project's own tests, benchmarks and tools, and for users who build
// their own pipeline from the pieces (`@glm4v/runtime/internal`). These names may change between versions.

export * from './index.js';
export * from './config.js';
export { SafetensorsFile, DTYPE_SIZES, MAX_HEADER_BYTES, type SafetensorsDType, type TensorInfo } from './checkpoint/safetensors.js';
export { writeSafetensors, type TensorData, type TensorStream } from './checkpoint/writer.js';
export { Checkpoint, INDEX_FILE, SINGLE_FILE } from './checkpoint/checkpoint.js';
export { KEY_RENAMES, renameKey } from './checkpoint/renames.js';
export { DEFAULT_STAGING_BYTES } from './checkpoint/upload.js';
export { WeightLoader, type WeightScope, type GetOptions, type MatrixOptions } from './checkpoint/weights.js';
export { Glm4vModel, DecodeStep, type PrefillInput, type PrefillOptions, type PrefillResult, type VisionInput, type NextToken, type DecodeOptions, type Taps } from './model/glm4v.js';
export { Session } from './model/session.js';
export { DecodeLoop } from './model/decode-loop.js';
export { loadModel, randomModel, type LoadedModel } from './model/load.js';
export { RandomWeights, type WeightSource, type QuantGroup, type QuantRequest } from './model/weights.js';
export { quantizeCheckpoint, type QuantizeOptions, type QuantizeProgress } from './checkpoint/quantize-checkpoint.js';
export { glm41v9bConfig, GLM41V_9B_CONFIG_JSON } from './model/glm41v-9b.js';
export { visionLayout, type Grid, type VisionLayout } from './model/vision-layout.js';
export { computeLogits, readLogitsInputs, writeLogitsResult, type LogitsRequest, type LogitsResult } from './logits-tool.js';
export { smartResize, roundHalfEven, MAX_ASPECT_RATIO, type SmartResizeOptions } from './preprocess/smart-resize.js';
export { resizeBicubic } from './preprocess/resample.js';
export { decodeImage, MAX_INPUT_PIXELS } from './preprocess/decode.js';
export { patchify, checkPreprocessorConfig } from './preprocess/patchify.js';
export { preprocessImages, preprocessRgb, imageTargetSize } from './preprocess/image.js';
export { preprocessVideo, probeVideo, sampleFrameIndices, VIDEO_SAMPLE_FPS, VIDEO_MAX_DURATION, type VideoMetadata, type VideoOptions } from './preprocess/video.js';
export type { ImageInput, PreparedImages, PreparedVideo, RgbImage } from './preprocess/types.js';
export { ropeIndex } from './rope-index.js';
export { Tokenizer, TextStream } from './prompt/tokenizer.js';
export { ChatTemplate, type ContentPart, type Message } from './prompt/chat-template.js';
export { DEFAULT_CHAT_TEMPLATE } from './prompt/default-template.js';
export { expandPlaceholders, IMAGE_TOKEN, VIDEO_TOKEN } from './prompt/placeholders.js';
export { makeTinyTokenizer, writeTinyTokenizer, tinySpecialIds, bytesToUnicode, TINY_SPECIAL_TOKENS, GLM_SPLIT_PATTERN, type TinySpecialToken } from './prompt/tiny-tokenizer.js';
export { checkpointShapes, decoderLayerShapes, visionBlockShapes, globalShapes, type TensorShape } from './model/tensor-shapes.js';
export { makeTinyCheckpoint, demoCheckpoint, TINY_CONFIG_JSON, DEMO_QUESTION, DEMO_VERSION } from './demo.js';
export { PhaseSplitter, type PhasedText } from './generate/phases.js';
export { resolveOptions, type ResolvedOptions } from './generate/options.js';
