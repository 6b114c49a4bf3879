// The demo page: pick a model (the bundled tiny demo checkpoint, a folder on this computer, or a URL), drop an
// image, ask; the weights stream to the GPU with progress, the thinking goes to a collapsible block, the answer
// streams, and the stats come at the end. All of it is @glm4v/runtime's browser build: the same code as under
// Node, with the page's WebGPU, files and image decoder.

import {
  AbortError,
  CheckpointError,
  ConfigError,
  Device,
  DeviceError,
  Glm4v,
  InputError,
  LimitError,
  type LoadProgress,
  type ModelFolder,
  OutOfMemoryError,
  PickedFolder,
} from '@glm4v/runtime';

const $ = <T extends HTMLElement = HTMLElement>(id: string) => document.getElementById(id) as T;
const state: { device?: Device; model?: Glm4v; image?: Uint8Array; load?: AbortController; run?: AbortController } = {};

function setState(s: 'starting' | 'no-webgpu' | 'idle' | 'loading' | 'ready' | 'generating' | 'done' | 'error'): void {
  $('status').dataset.state = s;
  const busy = s === 'loading' || s === 'generating';
  for (const id of ['use-demo', 'url-form']) $(id).toggleAttribute('inert', busy);
  $<HTMLButtonElement>('ask').disabled = !state.model || busy;
  $<HTMLButtonElement>('stop').disabled = s !== 'generating';
}

/** One clear message per kind of failure, with the runtime's own one-line reason under it. */
function showError(e: unknown): void {
  const err = e as Error;
  let title = 'Something went wrong.';
  if (err instanceof AbortError) title = 'Stopped.';
  else if (err instanceof OutOfMemoryError)
    title =
      'Too little GPU memory for this model. Close other GPU-heavy tabs or programs, or use a GPU with more memory.';
  else if (err instanceof LimitError) title = "This model does not fit this GPU's WebGPU limits.";
  else if (err instanceof CheckpointError || err instanceof ConfigError)
    title =
      'This is not a GLM-4.1V model folder (or it is incomplete): pick the folder that holds config.json, tokenizer.json and the model*.safetensors files.';
  else if (err instanceof InputError) title = 'This input cannot be used.';
  else if (err instanceof DeviceError) title = 'WebGPU is not available here.';
  const box = $('error');
  box.replaceChildren(
    Object.assign(document.createElement('strong'), { textContent: title }),
    document.createTextNode(err?.message ?? String(e)),
  );
  box.dataset.kind = err?.name ?? 'Error';
  box.hidden = false;
}

function clearError(): void {
  $('error').hidden = true;
}

async function device(): Promise<Device> {
  state.device ??= await Device.create();
  return state.device;
}

const mb = (n: number) => (n / 1e6).toFixed(n < 1e7 ? 2 : 0);

function progress(t0: number): (p: LoadProgress) => void {
  return ({ bytesDone, bytesTotal, tensor }) => {
    const s = (performance.now() - t0) / 1000;
    $('progress-fill').style.width = `${(100 * bytesDone) / Math.max(1, bytesTotal)}%`;
    $('progress-text').textContent =
      `${mb(bytesDone)} / ${mb(bytesTotal)} MB · ${(bytesDone / 1e6 / Math.max(s, 1e-3)).toFixed(1)} MB/s · ${tensor}`;
  };
}

async function loadModel(folder: string | ModelFolder, what: string): Promise<void> {
  clearError();
  state.model?.dispose();
  state.model = undefined;
  state.load = new AbortController();
  setState('loading');
  $('progress').hidden = false;
  $('model-info').textContent = `Loading ${what}…`;
  const t0 = performance.now();
  try {
    state.model = await Glm4v.load(folder, {
      device: await device(),
      onProgress: progress(t0),
      signal: state.load.signal,
    });
    const c = state.model.imageConfig;
    $('model-info').textContent =
      `Loaded ${what} in ${((performance.now() - t0) / 1000).toFixed(1)} s · images up to ${(c.maxPixels / 1e6).toFixed(1)} MP`;
    setState('ready');
  } catch (e) {
    $('model-info').textContent = '';
    showError(e);
    setState(state.device ? 'error' : 'no-webgpu');
  } finally {
    $('progress').hidden = true;
  }
}

function setImage(bytes: Uint8Array | undefined, type = 'image/png'): void {
  state.image = bytes;
  const img = $<HTMLImageElement>('preview');
  if (img.src) URL.revokeObjectURL(img.src);
  img.hidden = !bytes;
  $('drop-text').hidden = !!bytes;
  if (bytes) img.src = URL.createObjectURL(new Blob([bytes as Uint8Array<ArrayBuffer>], { type }));
  else img.removeAttribute('src');
}

async function setImageFile(file: File | undefined): Promise<void> {
  if (file) setImage(new Uint8Array(await file.arrayBuffer()), file.type);
}

/** Streams one answer: thinking into the collapsible block, the answer below it, live tok/s, then the stats. */
async function ask(): Promise<void> {
  const model = state.model;
  if (!model) return;
  clearError();
  state.run = new AbortController();
  setState('generating');
  const thinking = $<HTMLDetailsElement>('thinking');
  thinking.hidden = true;
  $('thinking-text').textContent = '';
  $('answer').textContent = '';
  $('stats').textContent = 'Reading the image and the prompt…';
  const text = $<HTMLTextAreaElement>('question').value;
  const content = [
    ...(state.image ? [{ type: 'image' as const, image: { data: state.image } }] : []),
    { type: 'text' as const, text },
  ];
  const maxNewTokens = Number($<HTMLInputElement>('max-tokens').value) || 512;
  const t0 = performance.now();
  let first = 0;
  let tokens = 0;
  try {
    for await (const ev of model.generate(
      { messages: [{ role: 'user', content }] },
      { maxNewTokens, signal: state.run.signal },
    )) {
      if (ev.type === 'token') {
        first ||= performance.now();
        tokens++;
        if (tokens > 1)
          $('stats').textContent =
            `${tokens} tokens · ${((tokens - 1) / ((performance.now() - first) / 1000)).toFixed(1)} tok/s`;
      } else if (ev.type === 'text' && ev.phase === 'thinking') {
        thinking.hidden = false;
        thinking.open = true;
        $('thinking-text').textContent += ev.text;
      } else if (ev.type === 'text') {
        if (thinking.open && !thinking.hidden) {
          thinking.open = false;
          $('thinking-summary').textContent = `Thought for ${((performance.now() - t0) / 1000).toFixed(1)} s (show)`;
        }
        $('answer').textContent += ev.text;
      } else {
        const s = ev.stats;
        $('stats').textContent =
          `${ev.finishReason === 'abort' ? 'stopped' : ev.finishReason} · ${s.promptTokens} prompt tokens, ${s.generatedTokens} generated · ` +
          `first token after ${(s.timeToFirstTokenMs / 1000).toFixed(2)} s · prefill ${s.prefillTokensPerSecond.toFixed(0)} tok/s · ` +
          `decode ${s.decodeTokensPerSecond.toFixed(1)} tok/s`;
      }
    }
    setState('done');
  } catch (e) {
    showError(e);
    setState('error');
  }
}

async function useDemo(): Promise<void> {
  await loadModel('demo/', 'the demo checkpoint (random weights)');
  if (state.model && !state.image) {
    const res = await fetch('demo/sample.png');
    if (res.ok) setImage(new Uint8Array(await res.arrayBuffer()));
  }
}

function wire(): void {
  $('use-demo').onclick = () => void useDemo();
  $<HTMLInputElement>('pick-folder').onchange = (ev) => {
    const files = (ev.target as HTMLInputElement).files;
    if (files?.length) {
      const folder = new PickedFolder(files);
      void loadModel(folder, `'${folder.location}'`);
    }
  };
  $<HTMLFormElement>('url-form').onsubmit = (ev) => {
    ev.preventDefault();
    const url = $<HTMLInputElement>('model-url').value.trim();
    if (url) void loadModel(url, url);
  };
  $('cancel-load').onclick = () => state.load?.abort();
  $('ask').onclick = () => void ask();
  $('stop').onclick = () => state.run?.abort();
  $('clear-image').onclick = () => setImage(undefined);
  $<HTMLInputElement>('pick-image').onchange = (ev) => void setImageFile((ev.target as HTMLInputElement).files?.[0]);
  const drop = $('drop');
  drop.ondragover = (ev) => {
    ev.preventDefault();
    drop.classList.add('over');
  };
  drop.ondragleave = () => drop.classList.remove('over');
  drop.ondrop = (ev) => {
    ev.preventDefault();
    drop.classList.remove('over');
    void setImageFile(ev.dataTransfer?.files[0]);
  };
}

async function start(): Promise<void> {
  wire();
  try {
    const d = await device();
    $('device').textContent = `WebGPU: ${d.describe()}`;
    setState('idle');
  } catch (e) {
    $('device').textContent = 'No WebGPU.';
    showError(e);
    setState('no-webgpu');
    for (const id of ['use-demo', 'url-form', 'model-card']) $(id).toggleAttribute('inert', true);
  }
}

void start();
