#!/usr/bin/python3
"""Reference arrays for the image preprocessing tests, made with Pillow (Debian's python3-pil 9.4) and numpy.

Writes packages/glm4v/test-fixtures/preprocess/:
  resize.safetensors   PIL Image.resize(BICUBIC) outputs (uint8 HWC) of deterministic pattern images; the
                       pattern is re-created by the TypeScript test (patternImage in resample.test.ts), so only
                       outputs are stored. Name: "resize_<h>x<w>_to_<H>x<W>".
  resize-hashes.json   sha256 of the outputs for large cases (4k and HD), too big to store.
  decode/*             small encoded files (PNG, JPEG, WebP, GIF, with EXIF orientation) and decode.safetensors
                       with what PIL decodes them to after ImageOps.exif_transpose and convert("RGB").
  pipeline.safetensors one end-to-end case: file -> smart_resize -> resize -> rescale/normalise (float32, as
                       transformers' PIL image processor does it) -> patchify; plus its grid.

CI does not need Python: the outputs are committed. Run: /usr/bin/python3 tools/make-preprocess-fixtures.py
"""
import hashlib
import io
import json
import math
import os
import struct

import numpy as np
from PIL import Image, ImageOps

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'packages', 'glm4v', 'test-fixtures', 'preprocess')


def pattern(h, w, seed=0):
    """Noise, gradient and 0/255 checker blocks: exercises rounding, smooth areas and clamping."""
    y, x, c = np.meshgrid(np.arange(h, dtype=np.uint64), np.arange(w, dtype=np.uint64),
                          np.arange(3, dtype=np.uint64), indexing='ij')
    hsh = (((x * 2654435761 + y * 40503 + c * 97 + seed * 7919) & 0xFFFFFFFF) >> 7) & 255
    grad = (x * 255 // max(w - 1, 1) + y * 97 + c * 50) % 256
    checker = np.where(((x >> 1) + (y >> 1) + c) % 2 == 1, 255, 0).astype(np.uint64)
    region = ((x >> 3) + (y >> 3)) % 3
    return np.where(region == 0, hsh, np.where(region == 1, grad, checker)).astype(np.uint8)


def write_safetensors(path, tensors):
    dtypes = {np.uint8: 'U8', np.float32: 'F32', np.int32: 'I32'}
    header, blobs, off = {}, [], 0
    for name, arr in tensors.items():
        arr = np.ascontiguousarray(arr)
        b = arr.tobytes()
        header[name] = {'dtype': dtypes[arr.dtype.type], 'shape': list(arr.shape), 'data_offsets': [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header, separators=(',', ':')).encode()
    h += b' ' * ((8 - len(h) % 8) % 8)
    with open(path, 'wb') as f:
        f.write(struct.pack('<Q', len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def pil_resize(arr, H, W):
    return np.asarray(Image.fromarray(arr, 'RGB').resize((W, H), Image.BICUBIC, reducing_gap=None))


RESIZE_CASES = [
    # (h, w) -> (H, W): up, down, mixed, tiny, odd, identity, large factors
    ((37, 53), (56, 84)),
    ((56, 84), (56, 84)),
    ((300, 200), (112, 168)),
    ((5, 7), (28, 28)),
    ((1, 1), (28, 28)),
    ((1, 20), (28, 560)),
    ((100, 30), (56, 140)),
    ((257, 131), (252, 140)),
    ((150, 150), (140, 140)),
    ((13, 240), (28, 504)),
    ((240, 160), (28, 28)),
    ((29, 29), (28, 28)),
]

HASH_CASES = [
    ((2160, 3840), (1624, 2912)),  # 4k, smart_resize max-pixel branch
    ((1080, 1920), (1092, 1932)),  # HD, slight upscale
]


def make_resize():
    tensors = {}
    for (h, w), (H, W) in RESIZE_CASES:
        tensors[f'resize_{h}x{w}_to_{H}x{W}'] = pil_resize(pattern(h, w, seed=h * 1000 + w), H, W)
    write_safetensors(os.path.join(ROOT, 'resize.safetensors'), tensors)
    hashes = {}
    for (h, w), (H, W) in HASH_CASES:
        out = pil_resize(pattern(h, w, seed=h * 1000 + w), H, W)
        hashes[f'resize_{h}x{w}_to_{H}x{W}'] = hashlib.sha256(out.tobytes()).hexdigest()
    with open(os.path.join(ROOT, 'resize-hashes.json'), 'w') as f:
        json.dump(hashes, f, indent=2)
        f.write('\n')


def exif_bytes(orientation):
    e = Image.Exif()
    e[0x0112] = orientation
    return e.tobytes()


def make_decode():
    d = os.path.join(ROOT, 'decode')
    os.makedirs(d, exist_ok=True)
    base = pattern(24, 40, seed=5)
    smooth = np.stack(np.meshgrid(np.linspace(0, 255, 40), np.linspace(30, 220, 24)), -1)
    smooth = np.concatenate([smooth, (smooth[..., :1] * 0.5 + 60)], -1).astype(np.uint8)
    files = {}
    files['rgb.png'] = (Image.fromarray(base, 'RGB'), {})
    alpha = (np.arange(24 * 40).reshape(24, 40) * 7 % 256).astype(np.uint8)
    files['rgba.png'] = (Image.fromarray(np.dstack([base, alpha]), 'RGBA'), {})
    files['gray.png'] = (Image.fromarray(base[..., 0], 'L'), {})
    files['gray-alpha.png'] = (Image.fromarray(np.dstack([base[..., 0], alpha]), 'LA'), {})
    pal = Image.fromarray(base, 'RGB').quantize(colors=16)
    files['palette.png'] = (pal, {})
    files['orient6.png'] = (Image.fromarray(base, 'RGB'), {'exif': exif_bytes(6)})
    files['q95-444.jpg'] = (Image.fromarray(smooth, 'RGB'), {'quality': 95, 'subsampling': 0})
    files['q90-420.jpg'] = (Image.fromarray(smooth, 'RGB'), {'quality': 90, 'subsampling': 2})
    files['orient3.jpg'] = (Image.fromarray(smooth, 'RGB'), {'quality': 95, 'subsampling': 0, 'exif': exif_bytes(3)})
    files['orient6.jpg'] = (Image.fromarray(smooth, 'RGB'), {'quality': 95, 'subsampling': 0, 'exif': exif_bytes(6)})
    files['orient8.jpg'] = (Image.fromarray(smooth, 'RGB'), {'quality': 95, 'subsampling': 0, 'exif': exif_bytes(8)})
    files['lossless.webp'] = (Image.fromarray(base, 'RGB'), {'lossless': True})
    files['lossy.webp'] = (Image.fromarray(smooth, 'RGB'), {'quality': 90})
    files['rgba-lossless.webp'] = (Image.fromarray(np.dstack([base, alpha]), 'RGBA'), {'lossless': True})
    tensors = {}
    for name, (img, kw) in files.items():
        path = os.path.join(d, name)
        img.save(path, **kw)
        with Image.open(path) as im:
            tensors[name] = np.asarray(ImageOps.exif_transpose(im).convert('RGB'))
    # GIF: two frames, the second different; the first frame is the one to use.
    gif = os.path.join(d, 'two-frames.gif')
    f0 = Image.fromarray(base, 'RGB').quantize(colors=32)
    f1 = Image.fromarray(255 - base, 'RGB').quantize(colors=32)
    f0.save(gif, save_all=True, append_images=[f1], duration=100, loop=0)
    with Image.open(gif) as im:
        tensors['two-frames.gif'] = np.asarray(ImageOps.exif_transpose(im).convert('RGB'))
    # Made once with sharp (pixels stored in Display P3, profile embedded): PIL ignores the profile, so must we.
    for name in ['p3-tagged.png']:
        with Image.open(os.path.join(d, name)) as im:
            tensors[name] = np.asarray(ImageOps.exif_transpose(im).convert('RGB'))
    write_safetensors(os.path.join(d, 'decode.safetensors'), tensors)


MEAN = [0.48145466, 0.4578275, 0.40821073]
STD = [0.26862954, 0.26130258, 0.27577711]


def smart_resize(t, h, w, factor=28, min_pixels=1568, max_pixels=9633792, tf=2):
    if h < factor or w < factor:
        s = max(factor / h, factor / w)
        h, w = int(h * s), int(w * s)
    hb, wb, tb = round(h / factor) * factor, round(w / factor) * factor, round(t / tf) * tf
    if tb * hb * wb > max_pixels:
        beta = math.sqrt((t * h * w) / max_pixels)
        hb, wb = max(factor, math.floor(h / beta / factor) * factor), max(factor, math.floor(w / beta / factor) * factor)
    elif tb * hb * wb < min_pixels:
        beta = math.sqrt(min_pixels / (t * h * w))
        hb, wb = math.ceil(h * beta / factor) * factor, math.ceil(w * beta / factor) * factor
    return hb, wb


def make_pipeline():
    """transformers' PIL-backend Glm4vImageProcessor, written out with numpy: resize, rescale (float64 product
    cast to float32), normalise in float32, duplicate in time, merge-window patch order."""
    src = pattern(45, 61, seed=9)
    path = os.path.join(ROOT, 'pipeline-45x61.png')
    Image.fromarray(src, 'RGB').save(path)
    with Image.open(path) as im:
        rgb = np.asarray(im.convert('RGB'))
    H, W = smart_resize(2, 45, 61, min_pixels=1568)
    img = pil_resize(rgb, H, W)
    x = (img.astype(np.float64) * (1 / 255)).astype(np.float32)
    x = (x - np.array(MEAN, np.float32)) / np.array(STD, np.float32)
    x = x.transpose(2, 0, 1)  # C, H, W
    gh, gw = H // 14, W // 14
    p = np.stack([x, x])  # T=2, C, H, W
    p = p.reshape(1, 2, 3, gh // 2, 2, 14, gw // 2, 2, 14)
    p = p.transpose(0, 3, 6, 4, 7, 2, 1, 5, 8).reshape(gh * gw, 3 * 2 * 14 * 14)
    write_safetensors(os.path.join(ROOT, 'pipeline.safetensors'), {
        'pixel_values': p.astype(np.float32),
        'image_grid_thw': np.array([[1, gh, gw]], np.int32),
    })


if __name__ == '__main__':
    os.makedirs(ROOT, exist_ok=True)
    make_resize()
    make_decode()
    make_pipeline()
    print('wrote', ROOT)
