#!/usr/bin/env python3
"""Conformance fixtures from the float64 numpy reference of GLM-4.1V in this folder (glm4v_ref.py,
preprocess.py; numpy only, no torch). CI never runs this; the files it writes are committed.

    python3 tools/reference/conformance.py verify      # recompute every case of the manifest, compare every tensor
    python3 tools/reference/conformance.py add-taps    # add the vision-tower taps to the image cases
    python3 tools/reference/conformance.py video-case  # write the clip and case-e_video.safetensors

`verify` recomputes each case from its inputs and the checkpoint and compares every stored tensor: float tensors
must round to float32 exactly as stored (the files hold float32, so that is the finest agreement there is to
show), integer tensors must be equal, pixel values must follow from the raw image. `add-taps` rewrites an image
case with the tensors it already has copied byte for byte and the vision taps added (vision_patch_embed,
vision_embeddings, vision_block0, vision_downsample), after checking that the reference reproduces the existing
ones. `video-case` makes a lossless clip with ffmpeg and the case that runs it (see conformance/fixtures/README.md).
"""

import argparse
import json
import os
import subprocess
import sys

import numpy as np

import glm4v_ref as R
import preprocess as P
import safetensors_io as st

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
FIXTURES = os.path.join(ROOT, "conformance", "fixtures")
VISION_TAPS = ["vision_patch_embed", "vision_embeddings", "vision_block0", "vision_downsample"]
PRODUCER = "tools/reference/conformance.py (float64 numpy reference of upstream transformers' Glm4v, commit 036266707c1c)"


def load_checkpoint(name):
    d = os.path.join(FIXTURES, name)
    with open(os.path.join(d, "config.json")) as f:
        cfg = R.model_config(json.load(f))
    with open(os.path.join(d, "preprocessor_config.json")) as f:
        pre = json.load(f)
    return R.Weights(st.read(os.path.join(d, "model.safetensors"))[0]), cfg, pre


def media(t):
    """(images, videos) of a case as (pixels float64, grids) or None."""
    img = (t["pixel_values"].astype(np.float64), t["image_grid_thw"].tolist()) if "pixel_values" in t else None
    vid = (t["pixel_values_videos"].astype(np.float64), t["video_grid_thw"].tolist()) if "pixel_values_videos" in t else None
    return img, vid


def compute(w, cfg, ids, types, images, videos, steps):
    out = R.forward(w, cfg, ids, types, images, videos)
    out["greedy_tokens"], out["greedy_margins"] = R.greedy(w, cfg, ids, types, steps, images, videos)
    return out


def agreement(name, got, ref):
    """One line on how `got` (float64) agrees with the stored `ref`; True when it rounds to it exactly."""
    got = np.asarray(got)
    if ref.dtype.kind in "iu":
        ok = np.array_equal(got.astype(np.int64).ravel(), ref.astype(np.int64).ravel())
        return ok, f"  {name:22s} {'equal' if ok else 'DIFFERENT'}"
    exact = np.mean(got.astype(np.float32).ravel() == ref.ravel())
    rel = np.abs(got.ravel() - ref.astype(np.float64).ravel()).max() / max(np.abs(ref).max(), 1e-300)
    return exact == 1.0, f"  {name:22s} max|Δ|/max|ref| {rel:.2e}  rounds to the stored f32: {100 * exact:.2f}% of {ref.size}"


def decode_clip(path):
    """All frames of a clip as [N, H, W, 3] uint8 (ffmpeg), and its frame rate (ffprobe)."""
    probe = json.loads(subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries", "stream=width,height,avg_frame_rate",
                                       "-of", "json", path], capture_output=True, check=True).stdout)["streams"][0]
    num, den = (int(v) for v in probe["avg_frame_rate"].split("/"))
    raw = subprocess.run(["ffmpeg", "-v", "error", "-i", path, "-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:1"], capture_output=True, check=True).stdout
    return np.frombuffer(raw, dtype=np.uint8).reshape(-1, probe["height"], probe["width"], 3), num / den


def verify_case(entry):
    w, cfg, pre = load_checkpoint(entry["checkpoint"])
    t, meta, _ = st.read(os.path.join(FIXTURES, f"case-{entry['case']}.safetensors"))
    images, videos = media(t)
    out = compute(w, cfg, t["input_ids"], t["mm_token_type_ids"], images, videos, len(t["greedy_tokens"]))
    out["mm_token_type_ids"] = t["mm_token_type_ids"]
    out["input_ids"] = t["input_ids"]
    if images is not None:
        pix, grids = [], []
        for k in range(len(images[1])):
            p, g = P.preprocess_image(t[f"image_{k}_rgb"], pre)
            pix.append(p)
            grids.append(g)
        out["pixel_values"], out["image_grid_thw"] = np.concatenate(pix), grids
    if videos is not None:
        frames, fps = decode_clip(os.path.join(FIXTURES, meta["clip"]))
        pixels, grid, _, _ = P.preprocess_video(frames, fps, pre)
        out["pixel_values_videos"], out["video_grid_thw"] = pixels, [grid]
    ok, lines = True, []
    for name in sorted(t):
        if name not in out:
            lines.append(f"  {name:22s} {'the raw image' if name.endswith('_rgb') else 'NOT RECOMPUTED'}")
            ok &= name.endswith("_rgb")
            continue
        good, line = agreement(name, out[name], t[name])
        ok &= good
        lines.append(line)
    return ok, lines, out, t


def cmd_verify(_args):
    with open(os.path.join(FIXTURES, "manifest.json")) as f:
        manifest = json.load(f)
    ok = True
    for entry in {e["case"]: e for e in manifest}.values():
        good, lines, _, _ = verify_case(entry)
        ok &= good
        print(f"case {entry['case']} ({entry['checkpoint']}): {'reproduced' if good else 'MISMATCH'}")
        print("\n".join(lines))
    sys.exit(0 if ok else 1)


def cmd_add_taps(args):
    for name in args.cases:
        path = os.path.join(FIXTURES, f"case-{name}.safetensors")
        _, meta, raw = st.read(path)
        entry = {"case": name, "checkpoint": meta["checkpoint"]}
        good, lines, out, t = verify_case(entry)
        if not good:
            sys.exit(f"{name}: the reference does not reproduce the stored tensors:\n" + "\n".join(lines))
        keep = {k: v for k, v in raw.items() if k not in VISION_TAPS}
        new = {k: out[k].astype(np.float32) for k in VISION_TAPS}
        meta["vision_taps_added_by"] = PRODUCER + "; every tensor already in the file reproduced exactly at float32"
        st.write(path, new, meta, keep)
        print(f"{path}: added {', '.join(f'{k} {list(new[k].shape)}' for k in VISION_TAPS)}")


def make_clip(path, frames, fps):
    """A lossless clip (PNG frames in Matroska: decoded as rgb24 it gives these bytes back)."""
    n, h, w, _ = frames.shape
    r = subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{w}x{h}", "-r", str(fps),
                        "-i", "pipe:0", "-c:v", "png", "-pred", "mixed", "-fflags", "+bitexact", "-flags", "+bitexact",
                        "-map_metadata", "-1", path], input=frames.tobytes(), capture_output=True)
    if r.returncode != 0:
        sys.exit(f"ffmpeg failed: {r.stderr.decode()}")
    back = subprocess.run(["ffmpeg", "-v", "error", "-i", path, "-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:1"], capture_output=True).stdout
    if back != frames.tobytes():
        sys.exit(f"{path} does not decode to the frames written")


def clip_frames(n, h, w, seed):
    """Smooth colour ramps that move from frame to frame, plus seeded noise: every sampled frame differs."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    frames = []
    for k in range(n):
        base = np.stack([128 + 100 * np.sin((x + 7 * k) / 9.0), 128 + 100 * np.cos((y - 5 * k) / 7.0), 40 + 2.5 * (x + y) + 10 * k], -1)
        frames.append(np.clip(base + rng.integers(-24, 25, size=(h, w, 3)), 0, 255))
    return np.array(frames, dtype=np.uint8)


def expand_ids(spec, tokens, grid, timestamps, merge):
    """Token ids from `spec`; VIDEO stands for what Glm4vProcessor.replace_video_token puts in place of <|video|>:
    per temporal patch, <|begin_of_image|>, one <|image|> per merged patch, <|end_of_image|>, int(timestamp) as
    text. Timestamps are single digits here, whose ids in the tiny tokenizer are their byte values."""
    ids, types = [], []
    per_frame = grid[1] * grid[2] // (merge * merge)
    for part in spec.split(","):
        if part.strip() != "VIDEO":
            ids.append(int(part))
            types.append(0)
            continue
        for ts in timestamps:
            digits = str(int(ts))
            if len(digits) != 1:
                raise ValueError("multi-digit timestamps: their token ids depend on the tokenizer's merges")
            ids += [tokens["image_start_token_id"]] + [tokens["image_token_id"]] * per_frame + [tokens["image_end_token_id"]] + [ord(digits)]
            types += [0] + [2] * per_frame + [0, 0]
    return np.array(ids, dtype=np.int64), np.array(types, dtype=np.int64)


def cmd_video_case(args):
    ck = "tiny-glm4v-f32"
    w, cfg, pre = load_checkpoint(ck)
    with open(os.path.join(FIXTURES, ck, "config.json")) as f:
        tokens = json.load(f)
    frames = clip_frames(args.frames, args.height, args.width, args.seed)
    clip = os.path.join(FIXTURES, args.clip)
    make_clip(clip, frames, args.fps)
    pixels, grid, idx, timestamps = P.preprocess_video(frames, args.fps, pre)
    pixels = pixels.astype(np.float32)  # the processor hands the model float32 values
    ids, types = expand_ids(args.ids, tokens, grid, timestamps, cfg["vision_config"]["spatial_merge_size"])
    videos = (pixels.astype(np.float64), [grid])
    out = compute(w, cfg, ids, types, None, videos, args.greedy)
    low = min(out["greedy_margins"])
    if low < 0.016:
        sys.exit(f"smallest greedy margin {low:.4f} < 0.016: float32 noise could flip it; pick another prompt or seed")
    f32 = lambda k: out[k].astype(np.float32)
    tensors = {
        "input_ids": ids, "mm_token_type_ids": types, "pixel_values_videos": pixels,
        "video_grid_thw": np.array([grid], dtype=np.int64), "position_ids": out["position_ids"].astype(np.int64),
        "rope_delta": np.array([out["rope_delta"]], dtype=np.int64),
        "greedy_tokens": np.array(out["greedy_tokens"], dtype=np.int64),
        "greedy_margins": np.array(out["greedy_margins"], dtype=np.float32),
        **{k: f32(k) for k in VISION_TAPS + ["video_embeds", "inputs_embeds", "hidden_states_layer0", "last_hidden_state", "logits"]},
    }
    meta = {
        "case": "e_video", "checkpoint": ck, "description": args.description, "produced_by": PRODUCER, "clip": args.clip,
        "transformers_commit_followed": "036266707c1cc7f759ee1970a502de15ee55a838",
        "video": f"{args.clip}: {args.frames} frames {args.height}x{args.width} at {args.fps} fps (PNG in Matroska, lossless); "
                 f"sampled frames {idx} (Glm4vVideoProcessor.sample_frames), timestamps {[int(s) for s in timestamps]}",
        "greedy": f"{args.greedy} tokens, argmax of last logits, full recompute, EOS not special-cased",
        "layout": "as the image cases; video_embeds = merged vision output of every frame in placeholder order; "
                  "vision_* taps over every frame's patches in order",
    }
    path = os.path.join(FIXTURES, "case-e_video.safetensors")
    st.write(path, tensors, meta)
    print(f"wrote {clip} and {path}: S={len(ids)}, grid {grid}, frames {idx}, timestamps {timestamps}, "
          f"greedy {out['greedy_tokens']}, smallest margin {low:.4f}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("verify", help="recompute every case of the manifest and compare")
    a = sub.add_parser("add-taps", help="add the vision taps to image cases")
    a.add_argument("cases", nargs="*", default=["b_image", "d_bf16_image"])
    v = sub.add_parser("video-case", help="write the video clip and its case")
    v.add_argument("--ids", required=True, help="comma-separated token ids; VIDEO expands to the video's frames")
    v.add_argument("--frames", type=int, default=8)
    v.add_argument("--height", type=int, default=56)
    v.add_argument("--width", type=int, default=84)
    v.add_argument("--fps", type=int, default=4)
    v.add_argument("--seed", type=int, default=0)
    v.add_argument("--greedy", type=int, default=8)
    v.add_argument("--clip", default="clip-56x84-4fps.mkv")
    v.add_argument("--description", default="a video: 8 frames 56x84 at 4 fps, 4 sampled, grid [2, 4, 6]")
    args = ap.parse_args()
    {"verify": cmd_verify, "add-taps": cmd_add_taps, "video-case": cmd_video_case}[args.cmd](args)


if __name__ == "__main__":
    main()
