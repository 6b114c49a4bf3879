// `@glm4v/runtime/testing`: the scaffolding of the project's tests, benchmarks and demo, kept out of the runtime's
// entry points (`@glm4v/runtime`, `@glm4v/runtime/internal`): tiny and fixed checkpoints with their tokenizer, the
// demo checkpoint, the real config for random weights at the real shapes, and the built CLI (and redis-server) as
// child processes. Node only. These names may change between versions.

export {
  makeTinyTokenizer,
  writeTinyTokenizer,
  tinySpecialIds,
  bytesToUnicode,
  TINY_SPECIAL_TOKENS,
  GLM_SPLIT_PATTERN,
  type TinySpecialToken,
} from './prompt/tiny-tokenizer.js';
export {
  makeTinyCheckpoint,
  demoCheckpoint,
  TINY_CONFIG_JSON,
  DEMO_QUESTION,
  DEMO_VERSION,
  type TinyCheckpointOptions,
} from './demo.js';
export { makeFixedCheckpoint, fixedChain, FIXED_REPLY, FIXED_REPLY_TOKENS } from './fixed-checkpoint.js';
export { glm41v9bConfig, GLM41V_9B_CONFIG_JSON } from './model/glm41v-9b.js';
export { RandomWeights } from './model/weight-source.js';
export { randomModel } from './model/load-model.js';
export {
  CLI,
  runCli,
  startCli,
  waitFor,
  redisServerProgram,
  startRedis,
  type CliProcess,
  type RedisServer,
} from './cli/cli-process.js';
