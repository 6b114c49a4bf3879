// HTTP model folders under Node (Node has fetch too): the same checkpoint read over Range requests as from the
// disk, the same answers and prepared requests, and the same typed errors; plus what a server must do (answer Range
// requests) and what happens when it does not.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { copyFile, mkdir, mkdtemp, readdir, rm, truncate, writeFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CheckpointError, Device } from '@glm4v/core';
import { rejectionOf } from '@glm4v/core/testing';
import { Checkpoint, Glm4v, Glm4vProcessor, HttpFolder, INDEX_FILE, NodeFolder } from '@glm4v/runtime/internal';
import { demoCheckpoint } from '@glm4v/runtime/testing';
import { FIXTURES } from '../conformance/taps.js';
import { type StaticServer, startServer } from './tools/static-server.js';

let server: StaticServer;
let tmp: string;
let demo: string;
beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'glm4v-http-'));
  demo = await demoCheckpoint();
  server = await startServer({ '/fixtures/': FIXTURES, '/t/': tmp, '/demo/': demo });
});
afterAll(async () => {
  await server?.close();
  if (tmp) await rm(tmp, { recursive: true, force: true });
});

describe('HttpFolder (Range requests) under Node', () => {
  it('reads a checkpoint exactly as from the disk: the same tensors, byte for byte', async () => {
    const disk = await Checkpoint.open(join(FIXTURES, 'tiny-glm4v-bf16'));
    const http = await Checkpoint.open(new HttpFolder(`${server.url}fixtures/tiny-glm4v-bf16`));
    expect(http.dir).toBe(`${server.url}fixtures/tiny-glm4v-bf16/`);
    expect([...http.tensors.keys()]).toEqual([...disk.tensors.keys()]);
    for (const [name, info] of disk.tensors)
      expect(Buffer.from(await http.read(http.tensors.get(name)!)).equals(await disk.read(info)), name).toBe(true);
    await Promise.all([disk.close(), http.close()]);
  });

  it('Glm4v.load from a URL gives the same greedy answer as from the folder', async () => {
    const device = await Device.create();
    const ask = async (where: string | HttpFolder) => {
      const m = await Glm4v.load(where, { device });
      try {
        const messages = [
          {
            role: 'user' as const,
            content: [
              { type: 'image' as const, image: { path: join(demo, 'sample.png') } },
              { type: 'text' as const, text: 'What is it?' },
            ],
          },
        ];
        return (await m.generateText({ messages }, { maxNewTokens: 6, temperature: 0 })).tokens;
      } finally {
        m.dispose();
      }
    };
    try {
      expect(await ask(new HttpFolder(`${server.url}demo/`))).toEqual(await ask(demo));
    } finally {
      device.dispose();
    }
  });

  it('Glm4vProcessor.load from a URL prepares a request as from the folder, with no weight file there', async () => {
    const dir = join(tmp, 'p');
    await mkdir(dir);
    for (const f of await readdir(demo)) if (!f.endsWith('.safetensors')) await copyFile(join(demo, f), join(dir, f));
    const messages = [
      {
        role: 'user' as const,
        content: [
          { type: 'image' as const, image: { path: join(demo, 'sample.png') } },
          { type: 'text' as const, text: 'What is it?' },
        ],
      },
    ];
    const [http, disk] = await Promise.all([
      Glm4vProcessor.load(new HttpFolder(`${server.url}t/p/`)),
      Glm4vProcessor.load(demo),
    ]);
    expect(http.dir).toBe(`${server.url}t/p/`);
    const [a, b] = await Promise.all([
      http.prepare({ messages }, { maxPixels: 40_000 }),
      disk.prepare({ messages }, { maxPixels: 40_000 }),
    ]);
    expect(Array.from(a.ids)).toEqual(Array.from(b.ids));
    expect(a.media).toEqual(b.media);
  });

  it('refuses the same way as the disk: a missing shard, a shard outside the folder, a file truncated after opening', async () => {
    const dir = join(tmp, 'm');
    await mkdir(dir);
    await copyFile(join(FIXTURES, 'tiny-glm4v-f32', 'model.safetensors'), join(dir, 'a.safetensors'));
    const url = `${server.url}t/m/`;
    const same = async (index: object, pattern: RegExp) => {
      await writeFile(join(dir, INDEX_FILE), JSON.stringify(index));
      const a = await rejectionOf(Checkpoint.open(new NodeFolder(dir)));
      const b = await rejectionOf(Checkpoint.open(new HttpFolder(url)));
      expect(b).toBeInstanceOf(CheckpointError);
      const norm = (m: string, at: string) => m.replaceAll(at, '<dir>/').replace(/<dir>\/?$/, '<dir>');
      expect(norm(b.message, url)).toBe(norm(a.message.replaceAll(`${dir}/`, `${dir}`), dir));
      expect(b.message).toMatch(pattern);
    };
    await same(
      { weight_map: { 'lm_head.weight': 'b.safetensors' } },
      /index.json: shard "b.safetensors" is missing: http:.*\/t\/m\/b.safetensors does not exist$/,
    );
    await same({ weight_map: { 'lm_head.weight': '../x.safetensors' } }, /uses '\.\.' to leave the model folder/);
    await same(
      { weight_map: { 'lm_head.weight': 'http://example.com/x.safetensors' } },
      /is an absolute path; shards must lie inside the model folder/,
    );

    await writeFile(join(dir, INDEX_FILE), JSON.stringify({ weight_map: { 'lm_head.weight': 'a.safetensors' } }));
    const ckpt = await Checkpoint.open(new HttpFolder(url));
    const info = ckpt.tensors.get('lm_head.weight')!;
    await truncate(join(dir, 'a.safetensors'), info.offset + 100);
    const e = await rejectionOf(ckpt.read(info));
    expect(e).toBeInstanceOf(CheckpointError);
    expect(e.message).toMatch(
      /\/t\/m\/a.safetensors: tensor 'lm_head.weight' ends early: expected 131072 bytes .*after 100 of them/,
    );
    await ckpt.close();
  });

  it('a relative URL outside a page is refused as such', () => {
    expect(() => new HttpFolder('models/glm/')).toThrow(
      /'models\/glm\/' is not a URL \(outside a page it must be absolute\)/,
    );
  });

  it('a server that ignores Range requests is named as the cause', async () => {
    const plain = createServer((req, res) => res.writeHead(200, { 'content-length': 8 }).end(Buffer.alloc(8)));
    await new Promise<void>((r) => plain.listen(0, '127.0.0.1', r));
    try {
      const url = `http://127.0.0.1:${(plain.address() as AddressInfo).port}/m/`;
      const e = await rejectionOf(Checkpoint.open(new HttpFolder(url)));
      expect(e).toBeInstanceOf(CheckpointError);
      expect(e.message).toMatch(
        /m\/: shard "model.safetensors.index.json" the server ignores HTTP Range requests \(it answered 200 instead of 206\)/,
      );
    } finally {
      plain.close();
    }
  });
});
