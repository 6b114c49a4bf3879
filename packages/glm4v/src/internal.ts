// `@glm4v/runtime/internal` under Node: every platform's pieces (pieces.ts) plus the Node-only ones (writing
// safetensors, sharp decoding, ffmpeg video, the demo checkpoint). These names may change between versions.

export * from './pieces.js';
export { writeSafetensors, encodeHeader, type TensorData, type TensorStream } from './checkpoint/writer.js';
export { writeLogitsResult } from './cli/logits.js';
export { NodeFolder } from './files/node.js';
export { preprocessVideo, probeVideo, sampleFrameIndices, VIDEO_SAMPLE_FPS, VIDEO_MAX_DURATION, type VideoMetadata, type VideoOptions } from './preprocess/video.js';
export { makeTinyTokenizer, writeTinyTokenizer, tinySpecialIds, bytesToUnicode, TINY_SPECIAL_TOKENS, GLM_SPLIT_PATTERN, type TinySpecialToken } from './prompt/tiny-tokenizer.js';
export { makeTinyCheckpoint, demoCheckpoint, TINY_CONFIG_JSON, DEMO_QUESTION, DEMO_VERSION } from './demo.js';
