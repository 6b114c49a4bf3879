// Everything below the public API, for users who build their own pipeline from the pieces (and the project's own
// tools), as `@glm4v/runtime/internal`; test, benchmark and demo scaffolding is in `@glm4v/runtime/testing`
// (testing.ts). These names may change between versions.

export * from './index.js';
export * from './config.js';
export {
  SafetensorsFile,
  DTYPE_SIZES,
  MAX_HEADER_BYTES,
  type SafetensorsDType,
  type TensorInfo,
} from './checkpoint/safetensors.js';
export { writeSafetensors, encodeHeader, type TensorData, type TensorStream } from './checkpoint/writer.js';
export { Checkpoint, INDEX_FILE, SINGLE_FILE } from './checkpoint/checkpoint.js';
export { planWeights, checkWeightsFit, quantizedWeights, type WeightPlan } from './checkpoint/plan.js';
export { asFolder, readAll, type FileSink, type FileSource, type ModelFolder } from './files/folder.js';
export { HttpFolder, HttpFile, type HttpFolderOptions } from './files/http.js';
export { NodeFolder } from './files/node.js';
export { KEY_RENAMES, renameKey } from './checkpoint/renames.js';
export { DEFAULT_STAGING_BYTES } from './checkpoint/upload.js';
export { WeightLoader, LoaderScope } from './checkpoint/weight-loader.js';
export {
  Glm4vModel,
  DecodeStep,
  type PrefillInput,
  type PrefillOptions,
  type PrefillResult,
  type VisionInput,
  type DecodeOptions,
  type Taps,
} from './model/glm4v.js';
export { Session, KvPool } from './model/session.js';
export { Batcher, type BatcherOptions, type BatcherStats, type Submission } from './generate/batcher.js';
export { ApiServer, DEFAULT_MAX_BODY_BYTES, type ServerOptions } from './server/server.js';
export { loadModel, type LoadedModel } from './model/load-model.js';
export {
  F16Matrices,
  type WeightSource,
  type GetOptions,
  type MatrixOptions,
  type RowRanges,
  type QuantGroup,
  type QuantRequest,
} from './model/weight-source.js';
export { quantizeCheckpoint, type QuantizeOptions, type QuantizeProgress } from './checkpoint/quantize-checkpoint.js';
export { visionLayout, type VisionLayout } from './model/vision-layout.js';
export { planMedia, checkGrid, type Grid, type MediaPlan, type PlaceholderRun } from './media-plan.js';
export {
  computeLogits,
  readLogitsInputs,
  writeLogitsResult,
  type LogitsRequest,
  type LogitsResult,
} from './logits-tool.js';
export { smartResize, roundHalfEven, MAX_ASPECT_RATIO, type SmartResizeOptions } from './preprocess/smart-resize.js';
export { resizeBicubic } from './preprocess/resample.js';
export { decodeImage, MAX_INPUT_PIXELS } from './preprocess/decode-image.js';
export { patchify, checkPreprocessorConfig } from './preprocess/patchify.js';
export { preprocessImages, preprocessRgb, imageTargetSize } from './preprocess/image.js';
export {
  preprocessVideo,
  probeVideo,
  sampleFrameIndices,
  VIDEO_SAMPLE_FPS,
  VIDEO_MAX_DURATION,
  type VideoMetadata,
  type VideoOptions,
} from './preprocess/video.js';
export type { ImageInput, PreparedImages, PreparedVideo, RgbImage } from './preprocess/types.js';
export { ropeIndex, type RopeIndex } from './rope-index.js';
export { Tokenizer, TextStream } from './prompt/tokenizer.js';
export { ChatTemplate, type ContentPart, type Message } from './prompt/chat-template.js';
export { DEFAULT_CHAT_TEMPLATE } from './prompt/default-template.js';
export { expandPlaceholders, IMAGE_TOKEN, VIDEO_TOKEN } from './prompt/placeholders.js';
export {
  checkpointShapes,
  decoderLayerShapes,
  visionBlockShapes,
  globalShapes,
  type TensorShape,
} from './model/tensor-shapes.js';
export { PhaseSplitter, type PhasedText } from './generate/phases.js';
export { resolveOptions, type ResolvedOptions } from './generate/options.js';
export { ConversationCache } from './generate/conversation.js';
