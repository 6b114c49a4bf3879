// `@glm4v/runtime/internal` in a page: the pieces the project's browser pages and tests use, each of which runs in
// a browser (the Node entry, internal.ts, has more: sharp decoding, ffmpeg video, the demo checkpoint writer),
// plus the page's folders. These names may change between versions.

export * from './index.js';
export * from '../config.js';
export {
  SafetensorsFile,
  DTYPE_SIZES,
  MAX_HEADER_BYTES,
  type SafetensorsDType,
  type TensorInfo,
} from '../checkpoint/safetensors.js';
export { Checkpoint, INDEX_FILE, SINGLE_FILE } from '../checkpoint/checkpoint.js';
export { planWeights, checkWeightsFit, quantizedWeights, type WeightPlan } from '../checkpoint/plan.js';
export { asFolder, readAll, type FileSource, type ModelFolder } from '../files/folder.js';
export { HttpFile, type HttpFolderOptions } from '../files/http.js';
export { WeightLoader, LoaderScope } from '../checkpoint/weight-loader.js';
export type { WeightSource } from '../model/weight-source.js';
export { Glm4vModel, type PrefillInput, type Taps } from '../model/glm4v.js';
export { loadModel, type LoadedModel } from '../model/load-model.js';
export { computeLogits, readLogitsInputs, type LogitsRequest, type LogitsResult } from '../logits-tool.js';
export { decodeImage, preprocessVideo } from './platform.js';
export { preprocessImages, preprocessRgb } from '../preprocess/image.js';
export { MAX_INPUT_PIXELS } from '../preprocess/image-input.js';
export { Tokenizer, TextStream } from '../prompt/tokenizer.js';
export { ChatTemplate } from '../prompt/chat-template.js';
