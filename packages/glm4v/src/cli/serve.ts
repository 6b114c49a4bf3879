// `glm4v-run serve`: the OpenAI-compatible server (server/) over one loaded model. Flags are checked first, the
// context against the folder's config next (openModel: the processor loads before the weights), so a mistake
// exits 2 before any weight is read. The generation flags set the defaults of every request (a request's own
// fields win). SIGTERM and SIGINT shut it down gracefully (stop accepting, finish or cancel what is in flight, free
// the GPU, exit 0).

import { stat } from 'node:fs/promises';
import { basename, resolve } from 'node:path';
import { InputError } from '@glm4v/core';
import { DEFAULT_PREFILL_CHUNK } from '../generate/batcher.js';
import { MAX_INPUT_PIXELS } from '../preprocess/decode-image.js';
import { ApiServer, DEFAULT_MAX_BODY_BYTES } from '../server/server.js';
import { GENERATION_FLAGS, GENERATION_HELP, generationOptions } from './generation-flags.js';
import { DEFAULT_CONTEXT, MODEL_FLAGS, MODEL_HELP, contextFlag, modelDir, openModel, weightFlags } from './open.js';
import { UsageError, intFlag, parseFlags } from './usage.js';

const HELP = `Usage:
  glm4v-run serve --model DIR [options]
  glm4v-run serve --demo [options]

Serves the model over HTTP with OpenAI's chat-completions API: POST /v1/chat/completions (streamed or not),
GET /v1/models, GET /health, GET /metrics (Prometheus). Up to --max-batch conversations decode together.

Options:
${MODEL_HELP}
  --host HOST               address to listen on (default 127.0.0.1)
  --port N                  port (default 8080; 0: any free port, printed at start)
  --api-key KEY             require 'Authorization: Bearer KEY' on /v1/ (default: $GLM4V_API_KEY, else none)
  --max-batch N             conversations decoded together (default 8)
  --context N               KV-cache tokens per conversation, prompt and reply (default ${DEFAULT_CONTEXT}, at most
                            max_position_embeddings); GPU memory for it is taken at start
  --max-queue N             requests accepted beyond --max-batch, waiting for a slot (default 4 × max batch);
                            more get 429 with Retry-After
  --max-body BYTES          largest request body (default ${DEFAULT_MAX_BODY_BYTES}); larger gets 413
  --media-dir DIR           folder that file:// image URLs and video paths may read from (default: none)
  --max-image-pixels N      largest image accepted, width × height (default ${MAX_INPUT_PIXELS})
  --model-name NAME         the model's id in the API (default: the checkpoint folder's name)
  --prefill-chunk N         prompt tokens prefilled between two decode steps: the longest a new prompt delays
                            the others' next token (default ${DEFAULT_PREFILL_CHUNK}, or less where the device's bindings need)
  --shutdown-timeout S      on SIGTERM, seconds to let requests in flight finish before cancelling them (default 30)
  --quiet                   no line per request on stderr
  -h, --help                this text

Defaults of every request (its own fields override them):
${GENERATION_HELP.split('\n')
  .filter((l) => !l.startsWith('  --context'))
  .join('\n')}

Exit status: 0 after a clean shutdown, 2 usage error, 3 bad model or input, 4 device error.`;

const OPTIONS = {
  ...MODEL_FLAGS,
  ...GENERATION_FLAGS,
  host: { type: 'string' },
  port: { type: 'string' },
  'api-key': { type: 'string' },
  'max-batch': { type: 'string' },
  'max-queue': { type: 'string' },
  'max-body': { type: 'string' },
  'media-dir': { type: 'string' },
  'max-image-pixels': { type: 'string' },
  'model-name': { type: 'string' },
  'prefill-chunk': { type: 'string' },
  'shutdown-timeout': { type: 'string' },
  quiet: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const;

export async function serveCommand(argv: string[]): Promise<void> {
  const { values: v } = parseFlags(argv, OPTIONS);
  if (v.help) {
    console.log(HELP);
    return;
  }
  const { contextLength: context, ...defaults } = generationOptions(v);
  const weights = weightFlags(v);
  const maxBatch = intFlag(v['max-batch'], 'max-batch', 1, 8);
  const flags = {
    port: intFlag(v.port, 'port', 0, 8080, 65535),
    maxQueue: intFlag(v['max-queue'], 'max-queue', 0, 4 * maxBatch),
    maxBodyBytes: intFlag(v['max-body'], 'max-body', 1, DEFAULT_MAX_BODY_BYTES),
    maxImagePixels: intFlag(v['max-image-pixels'], 'max-image-pixels', 1, MAX_INPUT_PIXELS),
    prefillChunkTokens:
      v['prefill-chunk'] === undefined ? undefined : intFlag(v['prefill-chunk'], 'prefill-chunk', 1, 0),
    graceMs: 1000 * Number(v['shutdown-timeout'] ?? 30),
  };
  if (!(flags.graceMs >= 0))
    throw new UsageError(`--shutdown-timeout expects seconds ≥ 0, got '${v['shutdown-timeout']}'`);
  const mediaDir = v['media-dir'] === undefined ? undefined : resolve(v['media-dir']);
  if (
    mediaDir &&
    !(await stat(mediaDir).then(
      (s) => s.isDirectory(),
      () => false,
    ))
  )
    throw new InputError(`--media-dir ${mediaDir}: no such folder`);
  const dir = await modelDir(v);
  let contextLength = 0;
  // the context is checked against the folder's config before the weights load (which can take minutes)
  const open = await openModel(dir, weights, async (processor) => {
    contextLength = contextFlag(context, processor);
    return [];
  });
  const modelId = v['model-name'] ?? (v.demo ? 'glm4v-demo' : basename(resolve(dir)));
  let server: ApiServer;
  try {
    server = await ApiServer.start(open.model, {
      modelId,
      host: v.host ?? '127.0.0.1',
      port: flags.port,
      apiKey: v['api-key'] ?? process.env.GLM4V_API_KEY,
      maxBatch,
      contextLength,
      maxQueue: flags.maxQueue,
      maxBodyBytes: flags.maxBodyBytes,
      prefillChunkTokens: flags.prefillChunkTokens,
      defaults,
      media: { mediaDir, maxImagePixels: flags.maxImagePixels },
      log: v.quiet ? undefined : (line) => process.stderr.write(`${line}\n`),
    });
  } catch (e) {
    open.close();
    throw e;
  }
  process.stderr.write(
    `glm4v-run serve: listening on ${server.url} (model '${modelId}', max batch ${server.maxBatch}, context ${server.contextLength})\n`,
  );
  await untilSignal((signal) => {
    process.stderr.write(`glm4v-run serve: ${signal}: shutting down\n`);
    return server.shutdown(flags.graceMs);
  });
  open.close();
}

/** Waits for SIGTERM or SIGINT, then for `stop`. */
function untilSignal(stop: (signal: string) => Promise<void>): Promise<void> {
  return new Promise<void>((done) => {
    const on = (signal: string) => void stop(signal).finally(done);
    process.once('SIGTERM', () => on('SIGTERM'));
    process.once('SIGINT', () => on('SIGINT'));
  });
}
