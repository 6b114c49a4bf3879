import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { crc32, deflateSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { InputError } from '@glm4v/core';
import { readSafetensors } from '../../test-fixtures/read-safetensors.js';
import { decodeImage } from './decode-image.js';
import { MAX_INPUT_PIXELS } from './image-input.js';

const DIR = new URL('../../test-fixtures/preprocess/decode/', import.meta.url).pathname;

/** Files PIL and sharp decode identically (JPEG: PIL's libjpeg-turbo and sharp's mozjpeg share the decoder). */
const EXACT = [
  'rgb.png',
  'rgba.png',
  'gray.png',
  'gray-alpha.png',
  'palette.png',
  'orient6.png',
  'q95-444.jpg',
  'q90-420.jpg',
  'orient3.jpg',
  'orient6.jpg',
  'orient8.jpg',
  'lossless.webp',
  'lossy.webp',
  'rgba-lossless.webp',
  'two-frames.gif',
  'p3-tagged.png',
];

function maxDiff(a: Uint8Array, b: Uint8Array): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

describe('decodeImage matches PIL (exif_transpose + convert("RGB"))', () => {
  const want = readSafetensors(join(DIR, 'decode.safetensors'));
  for (const name of EXACT) {
    it(`${name}`, async () => {
      const ref = want.get(name)!;
      const got = await decodeImage({ path: join(DIR, name) });
      expect([got.height, got.width, 3]).toEqual(ref.shape);
      expect(maxDiff(got.data, ref.data as Uint8Array)).toBe(0);
    });
  }

  it('decodes from bytes in memory as from the file', async () => {
    const path = join(DIR, 'orient6.jpg');
    const a = await decodeImage({ path });
    const b = await decodeImage({ data: readFileSync(path) });
    expect(b.data).toEqual(a.data);
    const c = await decodeImage({ data: new Uint8Array(readFileSync(path)) }); // a plain Uint8Array, not a Buffer
    expect(c.data).toEqual(a.data);
    expect([b.height, b.width]).toEqual([40, 24]);
  });
});

describe('decodeImage errors', () => {
  const tmp = mkdtempSync(join(tmpdir(), 'glm4v-decode-'));

  it('missing file names the file', async () => {
    const p = join(tmp, 'nope.png');
    await expect(decodeImage({ path: p })).rejects.toThrow(InputError);
    await expect(decodeImage({ path: p })).rejects.toThrow(`image file '${p}': no such file`);
  });

  it('a directory, an empty file', async () => {
    await expect(decodeImage({ path: tmp })).rejects.toThrow(/not a regular file/);
    const p = join(tmp, 'empty.png');
    writeFileSync(p, '');
    await expect(decodeImage({ path: p })).rejects.toThrow(`image file '${p}': empty file`);
  });

  it('not an image', async () => {
    const p = join(tmp, 'text.jpg');
    writeFileSync(p, 'hello, this is not a JPEG at all');
    await expect(decodeImage({ path: p })).rejects.toThrow(new RegExp(`image file '${p}': not a readable image`));
  });

  it('a truncated JPEG and a truncated PNG are refused, naming the file', async () => {
    for (const name of ['q95-444.jpg', 'rgb.png']) {
      const bytes = readFileSync(join(DIR, name));
      const p = join(tmp, `cut-${name}`);
      writeFileSync(p, bytes.subarray(0, Math.floor(bytes.length * 0.6)));
      const err = await decodeImage({ path: p }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(InputError);
      expect((err as Error).message).toContain(`image file '${p}'`);
    }
  });

  it('corrupt bytes in memory are named by index', async () => {
    const bytes = readFileSync(join(DIR, 'rgb.png'));
    await expect(decodeImage({ data: bytes.subarray(0, 100) }, 2)).rejects.toThrow(/image #2 \(100 bytes in memory\)/);
  });

  it('SVG is refused', async () => {
    const svg = Buffer.from(
      '<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><rect width="10" height="10"/></svg>',
    );
    await expect(decodeImage({ data: svg })).rejects.toThrow(/unsupported format 'svg'/);
  });

  it('both or neither of path and data', async () => {
    await expect(decodeImage({})).rejects.toThrow(/exactly one of 'path' or 'data'/);
    await expect(decodeImage({ path: 'x', data: new Uint8Array(1) })).rejects.toThrow(/exactly one/);
  });

  it(`more than ${MAX_INPUT_PIXELS / 1e6} MP is refused from the header, before decoding`, async () => {
    // A PNG of 12000x9000 whose only pixel data is 100 zero bytes: decoding it would fail, so getting the
    // limit error shows the check runs on the header alone.
    const chunk = (type: string, data: Buffer) => {
      const body = Buffer.concat([Buffer.from(type), data]);
      const out = Buffer.alloc(body.length + 8);
      out.writeUInt32BE(data.length, 0);
      body.copy(out, 4);
      out.writeUInt32BE(crc32(body), body.length + 4);
      return out;
    };
    const ihdr = Buffer.alloc(13);
    ihdr.writeUInt32BE(12000, 0);
    ihdr.writeUInt32BE(9000, 4);
    ihdr.set([8, 2, 0, 0, 0], 8); // 8-bit RGB
    const png = Buffer.concat([
      Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
      chunk('IHDR', ihdr),
      chunk('IDAT', deflateSync(Buffer.alloc(100))),
      chunk('IEND', Buffer.alloc(0)),
    ]);
    await expect(decodeImage({ data: png })).rejects.toThrow(/12000x9000 = 108\.0 MP exceeds the 100 MP input limit/);
    const p = join(tmp, 'huge.png');
    writeFileSync(p, png);
    await expect(decodeImage({ path: p })).rejects.toThrow(`image file '${p}': 12000x9000`);
  });
});
