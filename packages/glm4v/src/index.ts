// @glm4v/runtime: GLM-4.1V-9B-Thinking on WebGPU from its Hugging Face checkpoint.
//   const model = await Glm4v.load(dir, { onProgress, signal });
//   for await (const ev of model.generate({ messages }, options)) ...
// Glm4vProcessor checks and prepares a request without the weights (before they load).
// The pieces underneath (model, kernels' wiring, preprocessing, tokenizer) are in '@glm4v/runtime/internal'.

export {
  Glm4v,
  type Glm4vLoadOptions,
  type GenerateEvent,
  type GenerateResult,
  type GenerateOptions,
  type GenerationStats,
  type FinishReason,
  type Phase,
} from './glm4v.js';
export { Chat } from './chat.js';
export {
  Glm4vProcessor,
  PreparedPrompt,
  type GenerateRequest,
  type PrepareContext,
  type MediaLayout,
} from './processor.js';
export type { Message, ContentPart } from './prompt/chat-template.js';
export type { ImageInput } from './preprocess/types.js';
export { loadCheckpoint, type LoadedCheckpoint } from './checkpoint/load-checkpoint.js';
export type { FileSource, ModelFolder } from './files/folder.js';
export { HttpFolder, type HttpFolderOptions } from './files/http.js';
export type { LoadOptions, LoadProgress } from './checkpoint/upload.js';
export {
  readConfigs,
  type Glm4vConfig,
  type TextConfig,
  type VisionConfig,
  type TokenIds,
  type GenerationConfig,
  type PreprocessorConfig,
} from './config.js';
export type { Tokenizer } from './prompt/tokenizer.js';
export type { QuantFormat } from '@glm4v/kernels';
export {
  Device,
  type DeviceOptions,
  type ChunkedTensor,
  type Tensor,
  Glm4vError,
  CheckpointError,
  ConfigError,
  InputError,
  ContextOverflowError,
  ShaderCompileError,
  DeviceError,
  DeviceLostError,
  LimitError,
  OutOfMemoryError,
  AbortError,
} from '@glm4v/core';
