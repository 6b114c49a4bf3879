// The runtime in a real browser (headless Chromium through puppeteer-core, WebGPU on its SwiftShader adapter):
// (a) the conformance cases run in a page, compared here with the reference dumps; (b) the demo page end to end,
// with a screenshot saved to web/screenshots/; (c) checkpoints over HTTP Range from a local static server: a
// sharded one loads with progress, a truncated shard gives the same typed error as under Node, and a model that
// cannot fit the device is refused before its weights are downloaded. Skipped, with the reason in the suite's
// name, where no Chromium is installed (tools/setup.sh installs Debian's).

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { copyFile, mkdir, mkdtemp, readFile, rm, stat, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Page } from 'puppeteer-core';
import { Device } from '@glm4v/core';
import {
  INDEX_FILE,
  NodeFolder,
  SafetensorsFile,
  Tokenizer,
  decodeImage,
  encodeHeader,
  loadModel,
  writeSafetensors,
} from '@glm4v/runtime/internal';
import { demoCheckpoint } from '@glm4v/runtime/testing';
import { rejectionOf } from '@glm4v/core/testing';
import { FIXTURES, MANIFEST, argmaxRows, compareTaps, modalityOf, readTensors } from '../conformance/taps.js';
import { SITE_DIR, WEB_DIR, buildSite } from './tools/build.js';
import { type Chromium, findChromium, launchChromium } from './tools/chromium.js';
import { type StaticServer, startServer } from './tools/static-server.js';

const chromium = findChromium();
const SCREENSHOT = join(WEB_DIR, 'screenshots', 'demo-page.png');
const DECODE_FIXTURES = join(import.meta.dirname, '../packages/glm4v/test-fixtures/preprocess/decode');

let browser: Chromium;
let server: StaticServer;
let page: Page;
let tmp: string;
let noAdapter: string | undefined;

/**
 * The demo checkpoint changed so that its greedy answer is fixed: every sublayer's output norm is zero (the
 * residual stream stays the token's embedding), five tokens get one-hot embeddings, and lm_head maps each to the
 * next: the prompt's last token → <think> → 'a' → </think> → 'b' → eos. The page must show 'a' as thinking and 'b'
 * as the answer.
 */
async function makeThinkingFolder(dir: string): Promise<void> {
  const demo = await demoCheckpoint();
  await mkdir(dir);
  for (const f of [
    'config.json',
    'preprocessor_config.json',
    'tokenizer.json',
    'tokenizer_config.json',
    'chat_template.jinja',
  ]) {
    await copyFile(join(demo, f), join(dir, f)).catch(() => undefined);
  }
  const gen = JSON.parse(await readFile(join(demo, 'generation_config.json'), 'utf8'));
  await writeFile(
    join(dir, 'generation_config.json'),
    JSON.stringify({ eos_token_id: gen.eos_token_id, pad_token_id: gen.pad_token_id, do_sample: false }),
  );
  const tok = await Tokenizer.load(demo);
  const chain = [
    tok.encode('\n').at(-1)!,
    tok.tokenId('<think>')!,
    tok.encode('a')[0],
    tok.tokenId('</think>')!,
    tok.encode('b')[0],
    gen.eos_token_id[0],
  ];
  const f = await SafetensorsFile.open(join(demo, 'model.safetensors'));
  const tensors = await Promise.all(
    [...f.tensors.values()].map(async (info) => {
      const data = new Uint16Array((await f.read(info)).slice().buffer);
      const cols = info.shape[1];
      if (/post_(self_attn|mlp)_layernorm\.weight$/.test(info.name)) data.fill(0);
      if (info.name.endsWith('embed_tokens.weight') || info.name === 'lm_head.weight') data.fill(0);
      for (let k = 0; k + 1 < chain.length; k++) {
        if (info.name.endsWith('embed_tokens.weight')) data[chain[k] * cols + k] = 0x3f80; // bf16 1.0
        if (info.name === 'lm_head.weight') data[chain[k + 1] * cols + k] = 0x3f80;
      }
      return { name: info.name, dtype: info.dtype, shape: info.shape, data };
    }),
  );
  await f.close();
  await writeSafetensors(join(dir, 'model.safetensors'), tensors);
}

/** The folders the HTTP tests serve (under /t/): sharded, truncated, too big for the device. */
async function makeFolders(): Promise<void> {
  const src = join(FIXTURES, 'tiny-glm4v-f32');
  const f = await SafetensorsFile.open(join(src, 'model.safetensors'));
  const names = [...f.tensors.keys()];
  const tensors = await Promise.all(
    names.map(async (name) => {
      const info = f.tensors.get(name)!;
      return { name, dtype: info.dtype, shape: info.shape, data: await f.read(info) };
    }),
  );
  await f.close();
  for (const d of ['sharded', 'truncated', 'too-big']) {
    await mkdir(join(tmp, d));
    for (const c of ['config.json', 'generation_config.json', 'preprocessor_config.json'])
      await copyFile(join(src, c), join(tmp, d, c));
  }
  const half = Math.floor(names.length / 2);
  const shard = (i: number) => `model-0000${i}-of-00002.safetensors`;
  await writeSafetensors(join(tmp, 'sharded', shard(1)), tensors.slice(0, half));
  await writeSafetensors(join(tmp, 'sharded', shard(2)), tensors.slice(half));
  await writeFile(
    join(tmp, 'sharded', INDEX_FILE),
    JSON.stringify({ weight_map: Object.fromEntries(names.map((n, i) => [n, shard(i < half ? 1 : 2)])) }),
  );
  await copyFile(join(src, 'model.safetensors'), join(tmp, 'truncated', 'model.safetensors'));
  await truncate(join(tmp, 'truncated', 'model.safetensors'), 600_000);
  // lm_head with rows of 1.5 GiB: beyond any browser's storage binding. Sparse: only the header is written.
  const { header, sizes } = encodeHeader([{ name: 'lm_head.weight', dtype: 'F32', shape: [4, 402_653_184] }]);
  await writeFile(join(tmp, 'too-big', 'model.safetensors'), header);
  await truncate(join(tmp, 'too-big', 'model.safetensors'), header.byteLength + sizes[0]);
  await makeThinkingFolder(join(tmp, 'thinking'));
}

async function inPage<T>(fn: string, ...args: unknown[]): Promise<T> {
  return page.evaluate(
    (f, a) => (globalThis as unknown as Record<string, Record<string, (...x: unknown[]) => unknown>>).glm4v[f](...a),
    fn,
    args,
  ) as Promise<T>;
}

describe.skipIf(chromium.reason)(`in Chromium${chromium.reason ? ` — skipped: ${chromium.reason}` : ''}`, () => {
  beforeAll(async () => {
    tmp = await mkdtemp(join(tmpdir(), 'glm4v-web-'));
    await makeFolders();
    const site = await buildSite(SITE_DIR);
    server = await startServer({ '/': site, '/fixtures/': FIXTURES, '/t/': tmp, '/decode/': DECODE_FIXTURES });
    browser = await launchChromium(chromium.path!);
    page = await browser.browser.newPage();
    await page.goto(`${server.url}conformance.html`);
    await page.waitForFunction(() => (globalThis as unknown as { glm4v?: { ready: boolean } }).glm4v?.ready);
    const adapter = await page.evaluate(
      async () => !!(await (globalThis as unknown as { navigator: { gpu?: GPU } }).navigator.gpu?.requestAdapter()),
    );
    if (!adapter) noAdapter = 'this Chromium offers no WebGPU adapter';
  }, 180_000);
  afterAll(async () => {
    await browser?.close();
    await server?.close();
    if (tmp) await rm(tmp, { recursive: true, force: true });
  });

  // video is refused in a page (tested below), so the video case runs under Node only
  const PAGE_CASES = MANIFEST.filter((m) => !m.case.includes('video'));

  describe.each(PAGE_CASES)('(a) conformance $case in the page', ({ case: name, checkpoint }) => {
    it('every tap and the logits within their budgets, the same argmax everywhere, 8 greedy tokens identical', async (ctx) => {
      if (noAdapter) return ctx.skip(noAdapter);
      const r = await inPage<{
        adapter: string;
        logits: number[];
        shape: [number, number];
        greedy: number[];
        taps: Record<string, number[]>;
        ropeDelta: number;
      }>('runCase', `${server.url}fixtures/${checkpoint}/`, `${server.url}fixtures/case-${name}.safetensors`);
      const expected = await readTensors(join(FIXTURES, `case-${name}.safetensors`));
      expect(modalityOf(expected)).not.toBe('video');
      const taps = Object.fromEntries(Object.entries(r.taps).map(([k, v]) => [k, Float32Array.from(v)]));
      const report = compareTaps(
        { logits: Float32Array.from(r.logits), shape: r.shape, taps, ropeDelta: r.ropeDelta },
        expected,
      );
      if (report.firstFailure) expect.fail(`${report.firstFailure} (in the page, ${r.adapter})`);
      expect(r.taps.position_ids).toEqual(Array.from(expected.get('position_ids')!));
      expect(r.ropeDelta).toBe(expected.get('rope_delta')![0]);
      expect(argmaxRows(r.logits, ...r.shape)).toEqual(argmaxRows(expected.get('logits')!, ...r.shape));
      expect(r.greedy).toEqual(Array.from(expected.get('greedy_tokens')!));
      console.log(`${name} in the page (${r.adapter}):\n  ${report.lines.join('\n  ')}`);
    });
  });

  type LoadResult = {
    ok: boolean;
    name?: string;
    code?: string;
    message?: string;
    isGlm4vError?: boolean;
    progress: number[];
    leaked: number;
  };

  describe('(c) checkpoints over HTTP Range requests', () => {
    it('a sharded checkpoint streams piece by piece with monotone progress, each byte sent once, nothing left on the GPU', async (ctx) => {
      if (noAdapter) return ctx.skip(noAdapter);
      server.bytesSent.clear();
      const r = await inPage<LoadResult>('load', `${server.url}t/sharded/`, { maxStagingBytes: 64 * 1024 });
      expect(r.message).toBeUndefined();
      expect(r.ok).toBe(true);
      expect(r.leaked).toBe(0);
      expect(r.progress.length).toBeGreaterThan(10);
      for (let i = 1; i < r.progress.length; i++) expect(r.progress[i]).toBeGreaterThanOrEqual(r.progress[i - 1]);
      for (const i of [1, 2]) {
        const name = `model-0000${i}-of-00002.safetensors`;
        const size = (await stat(join(tmp, 'sharded', name))).size;
        const sent = server.bytesSent.get(`/t/sharded/${name}`)!;
        expect(sent).toBeGreaterThan(size * 0.9);
        expect(sent).toBeLessThanOrEqual(size + 16); // header twice at most (length, then JSON), never the data twice
      }
    });

    it('a truncated shard gives the same typed error as under Node, naming the URL instead of the path', async (ctx) => {
      if (noAdapter) return ctx.skip(noAdapter);
      const url = `${server.url}t/truncated/`;
      const r = await inPage<LoadResult>('load', url);
      expect(r.ok).toBe(false);
      expect(r.isGlm4vError).toBe(true);
      expect(r.leaked).toBe(0);
      const device = await Device.create();
      try {
        const dir = join(tmp, 'truncated');
        const e = await rejectionOf(loadModel(new NodeFolder(dir), device));
        expect(r.name).toBe(e.name);
        expect(r.name).toBe('CheckpointError');
        expect(r.message!.replaceAll(url, '<folder>/')).toBe(e.message.replaceAll(`${dir}/`, '<folder>/'));
        expect(r.message).toMatch(
          /model.safetensors: tensor '.*': data_offsets \[\d+, \d+\] run past the end of the data section/,
        );
      } finally {
        device.dispose();
      }
    });

    it("a model whose rows exceed the device's binding limit is refused (LimitError) before its weights are downloaded", async (ctx) => {
      if (noAdapter) return ctx.skip(noAdapter);
      server.bytesSent.clear();
      const r = await inPage<LoadResult>('load', `${server.url}t/too-big/`);
      expect(r.ok).toBe(false);
      expect(r.name).toBe('LimitError');
      expect(r.message).toMatch(
        /too-big\/model.safetensors: tensor 'lm_head.weight' \[4, 402653184\]: one row of 1610612736 bytes does not fit a storage binding of \d+ bytes \(this device's maxStorageBufferBindingSize\)/,
      );
      expect(r.progress).toEqual([]);
      expect(server.bytesSent.get('/t/too-big/model.safetensors')).toBeLessThan(1000); // the header only, of a 6 GB file
    });
  });

  /** The demo page opened in a new tab at `state` (prepared by `before`), handed to `fn`; fails on any page error. */
  async function onDemoPage(
    state: string,
    fn: (p: Page) => Promise<void>,
    before?: (p: Page) => Promise<void>,
  ): Promise<void> {
    const p = await browser.browser.newPage();
    const errors: string[] = [];
    p.on('pageerror', (e) => errors.push(String(e)));
    try {
      await before?.(p);
      await p.goto(server.url);
      await p.waitForSelector(`#status[data-state=${state}]`);
      await fn(p);
      expect(errors).toEqual([]);
    } finally {
      await p.close();
    }
  }

  const upload = async (p: Page, selector: string, path: string) =>
    ((await p.$(selector)) as unknown as { uploadFile(path: string): Promise<void> }).uploadFile(path);

  describe('(b) the demo page', () => {
    it('loads the demo checkpoint, takes an image, streams an answer with stats (screenshot saved)', async (ctx) => {
      if (noAdapter) return ctx.skip(noAdapter);
      await onDemoPage('idle', async (demo) => {
        await demo.click('#use-demo');
        await demo.waitForSelector('#status[data-state=ready]', { timeout: 60_000 });
        await upload(demo, '#pick-image', join(SITE_DIR, 'demo', 'sample.png'));
        await demo.waitForFunction("document.getElementById('preview').src.startsWith('blob:')");
        await demo.$eval('#max-tokens', (el) => ((el as unknown as { value: string }).value = '24'));
        await demo.click('#ask');
        await demo.waitForSelector('#status[data-state=done]', { timeout: 90_000 });
        const answer = await demo.$eval('#answer', (el) => el.textContent ?? '');
        const thinking = await demo.$eval('#thinking-text', (el) => el.textContent ?? '');
        const stats = await demo.$eval('#stats', (el) => el.textContent ?? '');
        expect((answer + thinking).length).toBeGreaterThan(0);
        expect(stats).toMatch(
          /prompt tokens, \d+ generated · first token after [\d.]+ s · prefill \d+ tok\/s · decode [\d.]+ tok\/s/,
        );
        await mkdir(join(WEB_DIR, 'screenshots'), { recursive: true });
        await demo.screenshot({ path: SCREENSHOT as `${string}.png`, fullPage: true });
        console.log(`demo page screenshot: ${SCREENSHOT}`);
      });
    });

    it('puts the thinking in a collapsed block and streams the answer below it (a checkpoint with a fixed answer, from a URL)', async (ctx) => {
      if (noAdapter) return ctx.skip(noAdapter);
      await onDemoPage('idle', async (p) => {
        await p.type('#model-url', `${server.url}t/thinking/`);
        await p.click('#url-form button');
        await p.waitForSelector('#status[data-state=ready]', { timeout: 60_000 });
        await p.click('#ask');
        await p.waitForSelector('#status[data-state=done]', { timeout: 60_000 });
        const got = (await p.evaluate(`({
          hidden: document.getElementById('thinking').hidden, open: document.getElementById('thinking').open,
          summary: document.getElementById('thinking-summary').textContent, thinking: document.getElementById('thinking-text').textContent,
          answer: document.getElementById('answer').textContent, stats: document.getElementById('stats').textContent })`)) as Record<
          string,
          unknown
        >;
        expect(got).toMatchObject({ hidden: false, open: false, thinking: 'a', answer: 'b' });
        expect(got.summary).toMatch(/^Thought for [\d.]+ s \(show\)$/);
        expect(got.stats).toMatch(/^stop · \d+ prompt tokens, 5 generated/);
      });
    });

    it('loads a model folder picked with <input webkitdirectory> (PickedFolder: files read by slices)', async (ctx) => {
      if (noAdapter) return ctx.skip(noAdapter);
      await onDemoPage('idle', async (p) => {
        await upload(p, '#pick-folder', join(SITE_DIR, 'demo'));
        await p.waitForSelector('#status[data-state=ready]', { timeout: 60_000 });
        expect(await p.$eval('#model-info', (el) => el.textContent)).toMatch(/^Loaded 'demo' in [\d.]+ s/);
      });
    });

    it('says so plainly when a folder is not a model, when the GPU memory is too small (before the download), and when the browser has no WebGPU', async (ctx) => {
      if (noAdapter) return ctx.skip(noAdapter);
      await onDemoPage('idle', async (p) => {
        await p.type('#model-url', `${server.url}fixtures/`);
        await p.click('#url-form button');
        await p.waitForSelector('#status[data-state=error]');
        expect(await p.$eval('#error', (el) => el.textContent)).toMatch(
          /not a GLM-4.1V model folder.*fixtures\/config.json: cannot read: file not found/,
        );
      });
      // A GPU that runs out of memory while the weights are probed (the browser's popErrorScope reports it).
      const outOfMemory = `
        const create = GPUDevice.prototype.createBuffer, pop = GPUDevice.prototype.popErrorScope;
        let last;
        GPUDevice.prototype.createBuffer = function (d) { last = d; return create.call(this, d); };
        GPUDevice.prototype.popErrorScope = async function () {
          const e = await pop.call(this);
          return e ?? (last && last.label === 'memory probe' && last.size > 65536 ? new GPUOutOfMemoryError('simulated') : null);
        };`;
      server.bytesSent.clear();
      await onDemoPage(
        'idle',
        async (p) => {
          await p.click('#use-demo');
          await p.waitForSelector('#status[data-state=error]');
          expect(await p.$eval('#error', (el) => el.textContent)).toMatch(
            /Too little GPU memory for this model.*demo\/: the weights need [\d.]+ GiB of GPU memory; this device ran out after [\d.]+ GiB/,
          );
        },
        (p) => p.evaluateOnNewDocument(outOfMemory).then(() => undefined),
      );
      expect(server.bytesSent.get('/demo/model.safetensors')).toBeLessThan(20_000); // the header, not the weights
      await onDemoPage(
        'no-webgpu',
        async (p) => {
          expect(await p.$eval('#error', (el) => el.textContent)).toMatch(
            /WebGPU is not available here.*navigator.gpu is undefined/,
          );
        },
        (p) => p.evaluateOnNewDocument('delete Navigator.prototype.gpu').then(() => undefined),
      );
    });
  });

  describe('media in the page', () => {
    it("PNGs equal sharp's decode exactly; JPEGs within a few levels", async (ctx) => {
      if (noAdapter) return ctx.skip(noAdapter);
      const worst: string[] = [];
      for (const [file, tol] of [
        ['rgb.png', 0],
        ['gray.png', 0],
        ['palette.png', 0],
        ['q95-444.jpg', 8],
        ['q90-420.jpg', 8],
        ['orient6.jpg', 8],
      ] as const) {
        const got = await inPage<{ width: number; height: number; rgb: number[] }>(
          'decode',
          `${server.url}decode/${file}`,
        );
        const ref = await decodeImage({ path: join(DECODE_FIXTURES, file) });
        expect([got.width, got.height], file).toEqual([ref.width, ref.height]);
        let max = 0;
        for (let i = 0; i < ref.data.length; i++) max = Math.max(max, Math.abs(got.rgb[i] - ref.data[i]));
        worst.push(`${file} ${max}`);
        expect(max, file).toBeLessThanOrEqual(tol);
      }
      console.log(`browser decode vs sharp, max |Δ| per image: ${worst.join(', ')}`);
    });

    it('video input is refused with an InputError saying why', async (ctx) => {
      if (noAdapter) return ctx.skip(noAdapter);
      const r = await inPage<{ name: string; message: string }>('video', 'clip.mp4');
      expect(r).toEqual({
        name: 'InputError',
        message:
          "video 'clip.mp4': video input is not supported in the browser build; give sampled frames as images, or use the Node build (ffmpeg)",
      });
    });
  });
});
