import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { copyFile, mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CheckpointError, Device } from '@glm4v/core';
import { Checkpoint, INDEX_FILE } from './checkpoint.js';
import { loadCheckpoint } from './load-checkpoint.js';
import { renameKey } from './renames.js';
import { writeSafetensors, type TensorData } from './writer.js';
import { rejectionOf } from '@glm4v/core/testing';

const FIXTURE = fileURLToPath(new URL('../../../../conformance/fixtures/tiny-glm4v-f32/', import.meta.url));

let device: Device;
let tmp: string;
beforeAll(async () => {
  device = await Device.create();
  tmp = await mkdtemp(join(tmpdir(), 'glm4v-ckpt-'));
});
afterAll(async () => {
  device?.dispose();
  await rm(tmp, { recursive: true, force: true });
});

function f32(name: string, shape: number[], seed: number): TensorData {
  const n = shape.reduce((a, b) => a * b, 1);
  return { name, dtype: 'F32', shape, data: Float32Array.from({ length: n }, (_, i) => seed + i / 8) };
}

let nth = 0;
/** A model folder with the tiny fixture's config.json and the given files. */
async function folder(files: Record<string, TensorData[] | object | string>): Promise<string> {
  const dir = join(tmp, `m${nth++}`);
  await mkdir(dir);
  await copyFile(join(FIXTURE, 'config.json'), join(dir, 'config.json'));
  for (const [name, content] of Object.entries(files)) {
    const path = join(dir, name);
    if (Array.isArray(content)) await writeSafetensors(path, content);
    else await writeFile(path, typeof content === 'string' ? content : JSON.stringify(content));
  }
  return dir;
}

const index = (map: Record<string, string>) => ({ metadata: { total_size: 0 }, weight_map: map });

/** The error of loading `dir` to the GPU, after checking that no GPU memory stayed in use. */
async function loadFailure(dir: string): Promise<Error> {
  const before = device.pool.stats.bytesInUse;
  const e = await rejectionOf(loadCheckpoint(dir, device));
  expect(device.pool.stats.bytesInUse).toBe(before);
  return e;
}

describe('Checkpoint', () => {
  const shard1 = [f32('model.language_model.norm.weight', [8], 1), f32('lm_head.weight', [4, 8], 2)];
  const shard2 = [f32('model.visual.post_layernorm.weight', [6], 3)];
  const shard3 = [f32('model.language_model.embed_tokens.weight', [5, 8], 4), f32('extra.not_in_index', [2], 5)];
  const map = {
    'model.language_model.norm.weight': 'model-00001-of-00003.safetensors',
    'lm_head.weight': 'model-00001-of-00003.safetensors',
    'model.visual.post_layernorm.weight': 'model-00002-of-00003.safetensors',
    'model.language_model.embed_tokens.weight': 'model-00003-of-00003.safetensors',
  };

  it('opens a sharded folder through its index, validating every shard, reading no data', async () => {
    const dir = await folder({
      'model-00001-of-00003.safetensors': shard1,
      'model-00002-of-00003.safetensors': shard2,
      'model-00003-of-00003.safetensors': shard3,
      [INDEX_FILE]: index(map),
    });
    const ckpt = await Checkpoint.open(dir);
    expect(new Set(ckpt.tensors.keys())).toEqual(new Set([...Object.keys(map), 'extra.not_in_index']));
    expect(ckpt.totalBytes).toBe(4 * (8 + 32 + 6 + 40 + 2));
    expect(ckpt.files.size).toBe(3);
    const emb = ckpt.tensors.get('model.language_model.embed_tokens.weight')!;
    expect(emb.file).toBe(join(dir, 'model-00003-of-00003.safetensors'));
    expect(new Float32Array((await ckpt.read(emb)).buffer)).toEqual(shard3[0].data);
    // Storage order: shard by shard, by offset.
    expect(ckpt.inFileOrder().map((t) => t.name)).toEqual([
      'model.language_model.norm.weight',
      'lm_head.weight',
      'model.visual.post_layernorm.weight',
      'model.language_model.embed_tokens.weight',
      'extra.not_in_index',
    ]);
    await ckpt.close();
  });

  it('loads a sharded folder to the GPU byte for byte', async () => {
    const dir = await folder({
      'model-00001-of-00003.safetensors': shard1,
      'model-00002-of-00003.safetensors': shard2,
      'model-00003-of-00003.safetensors': shard3,
      [INDEX_FILE]: index(map),
    });
    const before = device.pool.stats.bytesInUse;
    const loaded = await loadCheckpoint(dir, device, { maxChunkBytes: 64 });
    expect(loaded.config.text.hiddenSize).toBe(64);
    expect(loaded.tensors.size).toBe(5);
    for (const t of [...shard1, ...shard2, ...shard3]) {
      const m = loaded.tensors.get(t.name)!;
      expect(m.shape).toEqual(t.shape);
      expect(await m.read()).toEqual(t.data);
    }
    expect(loaded.tensors.get('model.language_model.embed_tokens.weight')!.chunks.length).toBe(3); // 64-byte chunks of 32-byte rows
    loaded.dispose();
    expect(device.pool.stats.bytesInUse).toBe(before);
  });

  it('opens a single model.safetensors', async () => {
    const ckpt = await Checkpoint.open(FIXTURE);
    expect(ckpt.tensors.size).toBe(69);
    expect(ckpt.tensors.get('lm_head.weight')!.shape).toEqual([512, 64]);
    await ckpt.close();
  });

  it('accepts shards linked inside the folder, and a hub cache snapshot linking into <repo>/blobs', async () => {
    const repo = join(tmp, 'models--org--name');
    const snap = join(repo, 'snapshots', 'abc123');
    await mkdir(join(repo, 'blobs'), { recursive: true });
    await mkdir(snap, { recursive: true });
    await writeSafetensors(join(repo, 'blobs', 'f00d'), shard1);
    await writeFile(
      join(repo, 'blobs', 'beef'),
      JSON.stringify(
        index({ 'lm_head.weight': 'model-1.safetensors', 'model.language_model.norm.weight': 'model-1.safetensors' }),
      ),
    );
    await symlink('../../blobs/f00d', join(snap, 'model-1.safetensors'));
    await symlink('../../blobs/beef', join(snap, INDEX_FILE));
    const ckpt = await Checkpoint.open(snap);
    expect(ckpt.tensors.size).toBe(2);
    await ckpt.close();

    const dir = await folder({ 'real.safetensors': shard1 });
    await symlink('real.safetensors', join(dir, 'model.safetensors'));
    const c2 = await Checkpoint.open(dir);
    expect(c2.tensors.size).toBe(2);
    await c2.close();
  });

  it('applies the one rename table and reports clashes', async () => {
    expect(renameKey('visual.blocks.0.norm1.weight')).toBe('model.visual.blocks.0.norm1.weight');
    expect(renameKey('model.layers.3.mlp.down_proj.weight')).toBe('model.language_model.layers.3.mlp.down_proj.weight');
    expect(renameKey('model.embed_tokens.weight')).toBe('model.language_model.embed_tokens.weight');
    expect(renameKey('model.norm.weight')).toBe('model.language_model.norm.weight');
    expect(renameKey('model.visual.merger.proj.weight')).toBe('model.visual.merger.proj.weight');
    expect(renameKey('lm_head.weight')).toBe('lm_head.weight');
    expect(renameKey('something.else')).toBe('something.else');

    const dir = await folder({
      'model.safetensors': [
        f32('visual.post_layernorm.weight', [2], 1),
        f32('model.layers.0.input_layernorm.weight', [2], 2),
        f32('odd.key', [2], 3),
      ],
    });
    const ckpt = await Checkpoint.open(dir);
    expect([...ckpt.tensors.keys()]).toEqual([
      'model.visual.post_layernorm.weight',
      'model.language_model.layers.0.input_layernorm.weight',
      'odd.key',
    ]);
    expect(ckpt.tensors.get('model.visual.post_layernorm.weight')!.sourceName).toBe('visual.post_layernorm.weight');
    expect(new Float32Array((await ckpt.read(ckpt.tensors.get('model.visual.post_layernorm.weight')!)).buffer)).toEqual(
      new Float32Array([1, 1.125]),
    );
    await ckpt.close();

    const clash = await folder({
      'model.safetensors': [f32('model.norm.weight', [2], 1), f32('model.language_model.norm.weight', [2], 2)],
    });
    const e = await loadFailure(clash);
    expect(e).toBeInstanceOf(CheckpointError);
    expect(e.message).toMatch(
      /'model.language_model.norm.weight' and 'model.norm.weight' .* both stand for 'model.language_model.norm.weight'/,
    );
  });
});

describe('Checkpoint refuses bad folders (and nothing stays on the GPU)', () => {
  const one = [f32('lm_head.weight', [4, 8], 1)];
  it('a tensor missing from its shard', async () => {
    const dir = await folder({
      'a.safetensors': one,
      [INDEX_FILE]: index({ 'lm_head.weight': 'a.safetensors', 'model.language_model.norm.weight': 'a.safetensors' }),
    });
    const e = await loadFailure(dir);
    expect(e).toBeInstanceOf(CheckpointError);
    expect(e.message).toContain(join(dir, INDEX_FILE));
    expect(e.message).toMatch(
      /tensor 'model.language_model.norm.weight' is mapped to 'a.safetensors', but .*a.safetensors does not contain it/,
    );
  });

  it('an index naming a missing shard', async () => {
    const dir = await folder({
      'a.safetensors': one,
      [INDEX_FILE]: index({ 'lm_head.weight': 'a.safetensors', 'x.weight': 'model-00002-of-00002.safetensors' }),
    });
    const e = await loadFailure(dir);
    expect(e).toBeInstanceOf(CheckpointError);
    expect(e.message).toMatch(
      /model.safetensors.index.json: shard "model-00002-of-00002.safetensors" is missing: .*model-00002-of-00002.safetensors does not exist$/,
    );
  });

  const outside = async () => {
    const path = join(tmp, `outside${nth++}.safetensors`);
    await writeSafetensors(path, one);
    return path;
  };
  it('a shard given as an absolute path', async () => {
    const dir = await folder({ [INDEX_FILE]: index({ 'lm_head.weight': await outside() }) });
    const e = await loadFailure(dir);
    expect(e).toBeInstanceOf(CheckpointError);
    expect(e.message).toMatch(
      /index.json: shard ".*outside\d+.safetensors" is an absolute path; shards must lie inside the model folder/,
    );
  });

  it("a shard path climbing out with '..'", async () => {
    const path = await outside();
    const dir = await folder({ [INDEX_FILE]: index({ 'lm_head.weight': `../${path.split('/').pop()}` }) });
    const e = await loadFailure(dir);
    expect(e).toBeInstanceOf(CheckpointError);
    expect(e.message).toMatch(/index.json: shard "\.\.\/outside\d+.safetensors" uses '\.\.' to leave the model folder/);
  });

  it('a shard that is a link pointing outside the folder (index or single file)', async () => {
    const dir = await folder({ [INDEX_FILE]: index({ 'lm_head.weight': 'model-1.safetensors' }) });
    await symlink(await outside(), join(dir, 'model-1.safetensors'));
    const e = await loadFailure(dir);
    expect(e).toBeInstanceOf(CheckpointError);
    expect(e.message).toMatch(
      /index.json: shard "model-1.safetensors" resolves to .*outside\d+.safetensors, outside the model folder .*a link pointing outside is refused/,
    );

    const single = await folder({});
    await symlink(await outside(), join(single, 'model.safetensors'));
    expect((await loadFailure(single)).message).toMatch(
      /shard "model.safetensors" resolves to .* outside the model folder/,
    );
  });

  it('an index that is not JSON, or has no weight_map', async () => {
    const bad = await folder({ [INDEX_FILE]: '{"weight_map": ' });
    expect((await loadFailure(bad)).message).toMatch(/model.safetensors.index.json: cannot read the index as JSON/);
    const noMap = await folder({ [INDEX_FILE]: { metadata: {} } });
    expect((await loadFailure(noMap)).message).toMatch(/model.safetensors.index.json: "weight_map" must be an object/);
    const badShard = await folder({ [INDEX_FILE]: { weight_map: { 'lm_head.weight': 3 } } });
    expect((await loadFailure(badShard)).message).toMatch(/weight_map\['lm_head.weight'\] must be a file name, got 3/);
  });

  it('a malformed second shard', async () => {
    const dir = await folder({
      'a.safetensors': one,
      'b.safetensors': '\u000e\u0000\u0000\u0000\u0000\u0000\u0000\u0000{"w": {"dtype"',
      [INDEX_FILE]: index({ 'lm_head.weight': 'a.safetensors', w: 'b.safetensors' }),
    });
    const e = await loadFailure(dir);
    expect(e).toBeInstanceOf(CheckpointError);
    expect(e.message).toMatch(/b.safetensors: header is not valid UTF-8 JSON/);
  });

  it('a folder without weights, and a missing folder', async () => {
    const empty = await folder({});
    expect((await loadFailure(empty)).message).toMatch(/no model.safetensors.index.json and no model.safetensors/);
    const e = await rejectionOf(Checkpoint.open(join(tmp, 'does-not-exist')));
    expect(e).toBeInstanceOf(CheckpointError);
    expect(e.message).toMatch(/does-not-exist: model folder not found/);
  });
});
