#!/usr/bin/env node
// Writes a tiny byte-level BPE tokenizer (tokenizer.json, tokenizer_config.json) and our chat template
// (chat_template.jinja) into a folder, e.g. a tiny checkpoint made for tests. Special tokens sit at
// real id − 151552 + vocab (the conformance checkpoints' rule). Needs `npm run build` first.
//   node tools/make-tiny-tokenizer.mjs OUT_DIR [--vocab 512]
import { writeTinyTokenizer } from '../packages/glm4v/dist/prompt/tiny-tokenizer.js';

const args = process.argv.slice(2);
const vi = args.indexOf('--vocab');
const vocab = vi >= 0 ? Number(args.splice(vi, 2)[1]) : 512;
if (args.length !== 1 || !Number.isInteger(vocab)) {
  console.error('usage: node tools/make-tiny-tokenizer.mjs OUT_DIR [--vocab N]');
  process.exit(2);
}
try {
  for (const f of await writeTinyTokenizer(args[0], vocab)) console.log(`wrote ${f}`);
} catch (e) {
  console.error(`make-tiny-tokenizer: ${e.message}`);
  process.exit(3);
}
