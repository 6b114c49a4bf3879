#!/usr/bin/env python3
"""Writes a conformance case (the format of conformance/fixtures/case-*.safetensors) from the upstream
transformers implementation, for anyone who has torch + transformers (CI never runs this; the committed fixtures
are the ground truth there).

    # a case from a checkpoint folder (tiny or real), computed in float64:
    python3 tools/make-conformance-fixtures.py case --checkpoint conformance/fixtures/tiny-glm4v-f32 \
        --name b_image --ids 291,293,296,241,92,IMAGE,79,49,22,260,297,19 --image cat.png \
        --out conformance/fixtures/case-b_image.safetensors

    # a tiny random checkpoint of the real architecture (f32, and a bf16 copy rounded to nearest even):
    python3 tools/make-conformance-fixtures.py checkpoint --out /tmp/tiny-glm4v --seed 0

Works with transformers on either side of the `mm_token_type_ids` change: older versions (e.g. commit 03eac6f6d2af)
derive token types from the ids, with get_rope_index(input_ids, image_grid_thw, video_grid_thw, attention_mask);
newer ones (e.g. 036266707c1c, which the committed fixtures follow) take get_rope_index(input_ids,
mm_token_type_ids, image_grid_thw, ...) and refuse a forward with grids but no `mm_token_type_ids`. So the token
types go to every model call whose forward takes them, get_rope_index is called by keyword as its signature allows,
and image features are read whether get_image_features returns per-image tensors or a model output holding them.

The image goes through the slow, PIL-based image processor (`Glm4vImageProcessorPil` where transformers has it,
else `AutoImageProcessor(use_fast=False)`), never the torchvision "fast" one: our resize reproduces Pillow's bicubic
filter, which the torchvision path does not (docs/model.md#image-pixels). The class used is recorded in the metadata.
Video cases are written by tools/reference/conformance.py video-case (numpy), not by this tool.

`--ids` lists the prompt's token ids; the word IMAGE stands for <|begin_of_image|>, one <|image|> per merged
patch of the image, <|end_of_image|> (ids from config.json). Without --image the case is text only; with
--random-image HxW a seeded random RGB image is used instead of a file.

Tensors written (float32 unless said; the same names and dtypes as the committed fixtures):
  input_ids [S] (int64), mm_token_type_ids [S] (int64: 0 text, 1 image placeholder),
  pixel_values [N, 1176], image_grid_thw [n, 3] (int64), image_0_rgb [H, W, 3] (uint8)   -- with an image
  position_ids [3, S] (int64, rows t/h/w), rope_delta [1] (int64)
  vision_patch_embed [N, Dv], vision_embeddings [N, Dv], vision_block0 [N, Dv], vision_downsample [N/4, D]
                                   taps inside the vision tower (with an image; docs/model.md#conformance-taps)
  image_embeds [tokens, D]         merged vision output in placeholder order (with an image)
  inputs_embeds [S, D]             after the image embeddings are placed
  hidden_states_layer0 [S, D]      the residual stream after decoder layer 0
  last_hidden_state [S, D]         after model.language_model.norm
  logits [S, V]
  greedy_tokens [G] (int64)        argmax continuation, full recompute, EOS not special-cased
  greedy_margins [G]               top-1 minus top-2 logit at each greedy step
and __metadata__ {case, checkpoint, description, transformers_version, transformers_commit_followed (only when
--transformers-commit names the commit the installed transformers was built from), image_processor (with an image),
greedy, layout}.
"""

import argparse
import inspect
import json
import os
import re
import sys

import numpy as np

try:
    import torch
    import transformers
    from safetensors.torch import save_file
    from transformers import AutoImageProcessor, Glm4vConfig, Glm4vForConditionalGeneration
except ImportError as e:  # pragma: no cover - depends on the machine
    sys.exit(f"this tool needs torch, transformers (with glm4v) and safetensors: {e}")

LAYOUT = ("input_ids/mm_token_type_ids [S]; position_ids [3,S] (t,h,w); logits [S,V]; hidden_states_layer0 = output of "
          "decoder layer 0 (residual stream, before any final norm); last_hidden_state = after model.language_model.norm; "
          "image_embeds = merged vision embeddings (Glm4vVisionModel pooler_output) in placeholder order")


def takes(fn, name, var_kwargs=False):
    """Whether `fn` has a parameter `name` (or, with var_kwargs, any **kwargs)."""
    params = inspect.signature(fn).parameters
    return name in params or (var_kwargs and any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()))


def load_model(checkpoint):
    # `torch_dtype` became `dtype` in transformers 4.56; the old name still works there, with a warning.
    version = tuple(int(v) for v in re.findall(r"\d+", transformers.__version__)[:2])
    dtype_kw = "dtype" if version >= (4, 56) else "torch_dtype"
    model = Glm4vForConditionalGeneration.from_pretrained(checkpoint, attn_implementation="eager", **{dtype_kw: torch.float64})
    return model.eval()


def load_image_processor(checkpoint):
    """The PIL-based processor (see the docstring): transformers 5 names it Glm4vImageProcessorPil; before, the
    slow Glm4vImageProcessor is the PIL one and use_fast=False picks it."""
    try:
        pil_cls = getattr(transformers, "Glm4vImageProcessorPil", None)
    except Exception:  # pragma: no cover - a lazy import failing for a missing optional dependency
        pil_cls = None
    if pil_cls is not None:
        return pil_cls.from_pretrained(checkpoint)
    return AutoImageProcessor.from_pretrained(checkpoint, use_fast=False)


def prepare_image(args, checkpoint):
    """The raw RGB array, the processor's pixel_values / image_grid_thw and its class name, or four Nones."""
    from PIL import Image
    if args.image:
        img = Image.open(args.image).convert("RGB")
    elif args.random_image:
        h, w = (int(v) for v in args.random_image.lower().split("x"))
        rgb = np.random.default_rng(args.seed).integers(0, 256, size=(h, w, 3), dtype=np.uint8)
        img = Image.fromarray(rgb, "RGB")
    else:
        return None, None, None, None
    processor = load_image_processor(checkpoint)
    out = processor(images=[img], return_tensors="pt")
    return np.asarray(img, dtype=np.uint8), out["pixel_values"].to(torch.float64), out["image_grid_thw"], type(processor).__name__


def build_ids(spec, config, grid):
    merge = config.vision_config.spatial_merge_size
    ids, types = [], []
    for part in spec.split(","):
        part = part.strip()
        if part == "IMAGE":
            if grid is None:
                sys.exit("--ids has IMAGE but no --image or --random-image was given")
            t, h, w = (int(v) for v in grid[0])
            n = t * h * w // (merge * merge)
            ids += [config.image_start_token_id] + [config.image_token_id] * n + [config.image_end_token_id]
            types += [0] + [1] * n + [0]
        else:
            ids.append(int(part))
            types.append(0)
    return torch.tensor(ids, dtype=torch.long), torch.tensor(types, dtype=torch.long)


def capture(model):
    """Forward hooks that keep the taps of the next forward pass."""
    taps = {}
    lm = model.model.language_model
    vis = model.model.visual

    def keep(name, flat=False):
        def hook(_module, _args, output):
            out = output[0] if isinstance(output, tuple) else output
            taps[name] = out.reshape(out.shape[0], -1) if flat else out  # downsample: [N, D, 1, 1] -> [N, D]
        return hook

    def pre_lm(_module, args, kwargs):
        taps["inputs_embeds"] = kwargs.get("inputs_embeds")

    def after_layer0(_module, _args, output):
        taps["hidden_states_layer0"] = output[0] if isinstance(output, tuple) else output

    def after_norm(_module, _args, output):
        taps["last_hidden_state"] = output

    hooks = [lm.register_forward_pre_hook(pre_lm, with_kwargs=True), lm.layers[0].register_forward_hook(after_layer0),
             lm.norm.register_forward_hook(after_norm), vis.patch_embed.register_forward_hook(keep("vision_patch_embed")),
             vis.embeddings.register_forward_hook(keep("vision_embeddings")), vis.blocks[0].register_forward_hook(keep("vision_block0")),
             vis.downsample.register_forward_hook(keep("vision_downsample", flat=True))]
    return taps, hooks


def model_inputs(model, seq, types, extra):
    """Keyword arguments of one forward call on `seq`: the image inputs, and the token types where the forward takes
    them (newer transformers require `mm_token_type_ids` whenever grids are given; older ones have no such
    parameter and would pass an unknown keyword on to the language model)."""
    kw = {"input_ids": seq[None], **extra}
    if takes(model.forward, "mm_token_type_ids"):
        kw["mm_token_type_ids"] = types[None]
    return kw


def rope_index(model, ids, types, grid):
    """get_rope_index by keyword: older versions take (input_ids, image_grid_thw, video_grid_thw, attention_mask),
    newer ones (input_ids, mm_token_type_ids, image_grid_thw, ...)."""
    fn = model.model.get_rope_index
    kw = {"input_ids": ids[None], "image_grid_thw": grid, "attention_mask": torch.ones_like(ids)[None]}
    if takes(fn, "mm_token_type_ids"):
        kw["mm_token_type_ids"] = types[None]
    return fn(**kw)


def image_embeds(model, pixel_values, grid):
    """Merged vision output, all images concatenated. get_image_features returns a tuple of per-image tensors in
    older versions, a model output whose pooler_output is that tuple in newer ones (asked for as a dict there)."""
    fn = model.model.get_image_features
    feats = fn(pixel_values, grid, **({"return_dict": True} if takes(fn, "return_dict", var_kwargs=True) else {}))
    if hasattr(feats, "pooler_output"):
        feats = feats.pooler_output
    if isinstance(feats, (list, tuple)):
        feats = torch.cat(list(feats), dim=0)
    return feats


@torch.no_grad()
def make_case(args):
    model = load_model(args.checkpoint)
    config = model.config
    rgb, pixel_values, grid, processor_name = prepare_image(args, args.checkpoint)
    ids, types = build_ids(args.ids, config, grid)
    extra = {} if pixel_values is None else {"pixel_values": pixel_values, "image_grid_thw": grid}

    taps, hooks = capture(model)
    out = model(**model_inputs(model, ids, types, extra))
    for h in hooks:
        h.remove()
    position_ids, rope_delta = rope_index(model, ids, types, grid)

    tokens, margins, seq, seq_types = [], [], ids.clone(), types.clone()
    for _ in range(args.greedy):  # full recompute each step, as the committed fixtures do
        last = model(**model_inputs(model, seq, seq_types, extra)).logits[0, -1]
        top = torch.topk(last, 2)
        tokens.append(int(top.indices[0]))
        margins.append(float(top.values[0] - top.values[1]))
        seq = torch.cat([seq, top.indices[:1]])
        seq_types = torch.cat([seq_types, torch.zeros(1, dtype=seq_types.dtype)])  # generated tokens are text

    f32 = lambda t: t.detach().to(torch.float32).contiguous()
    tensors = {
        "input_ids": ids,
        "mm_token_type_ids": types,
        "position_ids": position_ids[:, 0, :].to(torch.long).contiguous(),
        "rope_delta": rope_delta.reshape(-1)[:1].to(torch.long),
        "inputs_embeds": f32(taps["inputs_embeds"][0]),
        "hidden_states_layer0": f32(taps["hidden_states_layer0"][0]),
        "last_hidden_state": f32(taps["last_hidden_state"][0]),
        "logits": f32(out.logits[0]),
        "greedy_tokens": torch.tensor(tokens, dtype=torch.long),
        "greedy_margins": torch.tensor(margins, dtype=torch.float32),
    }
    if pixel_values is not None:
        tensors["pixel_values"] = f32(pixel_values)
        tensors["image_grid_thw"] = grid.to(torch.long)
        tensors["image_0_rgb"] = torch.from_numpy(rgb.copy())
        tensors["image_embeds"] = f32(image_embeds(model, pixel_values, grid))
        for name in ("vision_patch_embed", "vision_embeddings", "vision_block0", "vision_downsample"):
            tensors[name] = f32(taps[name])
    meta = {
        "case": args.name,
        "checkpoint": os.path.basename(os.path.normpath(args.checkpoint)),
        "description": args.description or args.name,
        "transformers_version": transformers.__version__,
        "greedy": f"{args.greedy} tokens, argmax of last logits, full recompute, EOS not special-cased",
        "layout": LAYOUT,
    }
    if args.transformers_commit:
        meta["transformers_commit_followed"] = args.transformers_commit
    if processor_name is not None:
        meta["image_processor"] = processor_name
    save_file(tensors, args.out, metadata=meta)
    low = min(margins) if margins else float("nan")
    print(f"wrote {args.out}: S={len(ids)}, greedy {tokens}, smallest margin {low:.4f}"
          + (" (below 0.016: float32 noise may flip it; pick another prompt)" if low < 0.016 else ""))
    print(json.dumps({k: v for k, v in meta.items() if k != "layout"}))


def make_checkpoint(args):
    """A tiny random Glm4v checkpoint with the conformance fixtures' sizes (conformance/fixtures/README.md)."""
    vocab = 512
    special = lambda real: real - 151552 + vocab
    tokens = dict(image_start_token_id=special(151339), image_end_token_id=special(151340),
                  video_start_token_id=special(151341), video_end_token_id=special(151342),
                  image_token_id=special(151343), video_token_id=special(151344))
    text = dict(vocab_size=vocab, hidden_size=64, intermediate_size=96, num_hidden_layers=3, num_attention_heads=4,
                num_key_value_heads=2, hidden_act="silu", max_position_embeddings=4096, rms_norm_eps=1e-5,
                attention_bias=True, partial_rotary_factor=0.5, rope_theta=10000.0,
                rope_scaling={"rope_type": "default", "mrope_section": [1, 2, 1]},
                pad_token_id=special(151329), eos_token_id=[special(i) for i in (151329, 151336, 151338, 151348)], **tokens)
    vision = dict(hidden_size=32, depth=2, num_heads=4, attention_bias=False, hidden_act="silu", in_channels=3,
                  image_size=98, patch_size=14, spatial_merge_size=2, temporal_patch_size=2, out_hidden_size=64,
                  intermediate_size=96, rms_norm_eps=1e-5)
    torch.manual_seed(args.seed)
    config = Glm4vConfig(text_config=text, vision_config=vision, tie_word_embeddings=False, **tokens)
    model = Glm4vForConditionalGeneration(config).to(torch.float32)
    with torch.no_grad():  # norms at 1 hide layer wiring mistakes; draw them around 1 instead
        for name, p in model.named_parameters():
            if p.ndim == 1 and "norm" in name and name.endswith("weight"):
                p.copy_(1 + 0.1 * torch.randn_like(p))
    f32_dir, bf16_dir = f"{args.out}-f32", f"{args.out}-bf16"
    model.save_pretrained(f32_dir, safe_serialization=True)
    model.to(torch.bfloat16).save_pretrained(bf16_dir, safe_serialization=True)
    for d in (f32_dir, bf16_dir):  # the processor config, with a pixel floor low enough for small test images
        with open(os.path.join(d, "preprocessor_config.json"), "w") as f:
            json.dump({"size": {"shortest_edge": 1568, "longest_edge": 9633792}, "do_resize": True, "resample": 3,
                       "do_rescale": True, "rescale_factor": 1 / 255, "do_normalize": True,
                       "image_mean": [0.48145466, 0.4578275, 0.40821073], "image_std": [0.26862954, 0.26130258, 0.27577711],
                       "do_convert_rgb": True, "patch_size": 14, "temporal_patch_size": 2, "merge_size": 2,
                       "image_processor_type": "Glm4vImageProcessor", "processor_class": "Glm4vProcessor"}, f, indent=2)
    print(f"wrote {f32_dir} and {bf16_dir}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("case", help="compute one conformance case")
    c.add_argument("--checkpoint", required=True)
    c.add_argument("--name", required=True)
    c.add_argument("--ids", required=True, help="comma-separated token ids; IMAGE expands to the image's tokens")
    c.add_argument("--image")
    c.add_argument("--random-image", help="HxW of a seeded random RGB image")
    c.add_argument("--seed", type=int, default=0)
    c.add_argument("--greedy", type=int, default=8)
    c.add_argument("--description")
    c.add_argument("--transformers-commit", help="the commit the installed transformers was built from, recorded as "
                   "transformers_commit_followed (the version string alone does not name one)")
    c.add_argument("--out", required=True)
    k = sub.add_parser("checkpoint", help="write a tiny random checkpoint (f32 and bf16)")
    k.add_argument("--out", required=True, help="folder prefix: writes PREFIX-f32/ and PREFIX-bf16/")
    k.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    make_case(args) if args.cmd == "case" else make_checkpoint(args)


if __name__ == "__main__":
    main()
