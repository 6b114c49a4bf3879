"""GLM-4.1V (Glm4vForConditionalGeneration) in float64 numpy: an implementation of the model written from upstream
transformers' modeling_glm4v.py (followed at commit 036266707c1c) and independent of this repository's TypeScript,
for checking that port and for writing conformance fixtures (docs/model.md describes every step). Each function
names the upstream function or module it mirrors. All arithmetic is float64: where upstream, run in float64,
still casts to float32 (its RMSNorm, rotary tables, softmax and position-table resampling do), this does not, so
the dumps are the model's exact values, not one float32 rounding of them."""

import math

import numpy as np

_erf = np.vectorize(math.erf)


class Weights:
    """The checkpoint's tensors by name, as float64 (bf16 widened exactly)."""

    def __init__(self, tensors):
        self.t = {k: np.asarray(v, dtype=np.float64) for k, v in tensors.items()}

    def __call__(self, name):
        return self.t[name]


# ---------------------------------------------------------------------------------------------- shared layers

def rms_norm(x, w, eps):
    """Glm4vRMSNorm.forward: w * x / sqrt(mean(x^2) + eps)."""
    return w * (x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps))


def layer_norm(x, w, b, eps):
    """torch.nn.LayerNorm (biased variance)."""
    mu = x.mean(axis=-1, keepdims=True)
    var = ((x - mu) ** 2).mean(axis=-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * w + b


def silu(x):
    return x / (1.0 + np.exp(-x))


def gelu(x):
    """nn.GELU(): the exact erf form."""
    return 0.5 * x * (1.0 + _erf(x / math.sqrt(2.0)))


def softmax(s):
    s = s - s.max(axis=-1, keepdims=True)
    e = np.exp(s)
    return e / e.sum(axis=-1, keepdims=True)


def linear(x, w, b=None):
    """nn.Linear: x @ w.T + b, w [out, in]."""
    y = x @ w.T
    return y if b is None else y + b


# ---------------------------------------------------------------------------------------------- vision tower

def vision_position_ids(grids, merge):
    """transformers.vision_utils.get_vision_position_ids: (row, col) of every patch in merge-window order, the
    same (h, w) layout repeated for each of a grid's t frames."""
    out = []
    for t, h, w in grids:
        hpos, wpos = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
        shape = (h // merge, merge, w // merge, merge)
        hw = np.stack([hpos.reshape(shape).transpose(0, 2, 1, 3).ravel(), wpos.reshape(shape).transpose(0, 2, 1, 3).ravel()], -1)
        out.append(np.tile(hw, (t, 1)))
    return np.concatenate(out)


def vision_segments(grids):
    """get_vision_cu_seqlens (merge_temporal False): one attention segment of h*w patches per frame."""
    cu = [0]
    for t, h, w in grids:
        for _ in range(t):
            cu.append(cu[-1] + h * w)
    return cu


def cubic_weights(frac, a=-0.75):
    """The 4 taps' weights of PyTorch's bicubic (Keys kernel, A = -0.75) at fractional offset `frac`."""
    near = lambda d: ((a + 2) * d - (a + 3)) * d * d + 1
    far = lambda d: ((a * d - 5 * a) * d + 8 * a) * d - 4 * a
    return np.array([far(frac + 1), near(frac), near(1 - frac), far(2 - frac)])


def interpolated_position_embedding(table, rows, cols, heights, widths):
    """Glm4vVisionEmbeddings.forward: the [side*side, D] learned table viewed as a side x side image, sampled with
    F.grid_sample(mode="bicubic", align_corners=False, padding_mode="border") at each patch's centre, the target
    size being that patch's own grid (gh, gw). Border padding clamps every tap's index."""
    side = int(round(math.sqrt(table.shape[0])))
    img = table.reshape(side, side, -1)
    out = np.zeros((len(rows), table.shape[1]))
    for k, (r, c, gh, gw) in enumerate(zip(rows, cols, heights, widths)):
        sy = (r + 0.5) * side / gh - 0.5  # grid_sample's unnormalisation with align_corners=False
        sx = (c + 0.5) * side / gw - 0.5
        y0, x0 = math.floor(sy), math.floor(sx)
        wy, wx = cubic_weights(sy - y0), cubic_weights(sx - x0)
        ys = np.clip(np.arange(y0 - 1, y0 + 3), 0, side - 1)
        xs = np.clip(np.arange(x0 - 1, x0 + 3), 0, side - 1)
        out[k] = np.einsum("a,b,abd->d", wy, wx, img[np.ix_(ys, xs)])
    return out


def rotate_half(x):
    h = x.shape[-1] // 2
    return np.concatenate([-x[..., h:], x[..., :h]], axis=-1)


def vision_rotary(pos, head_dim, theta=10000.0):
    """Glm4vVisionRotaryEmbedding(head_dim // 2) on (row, col): angles [S, head_dim] = cat(f, f) with
    f = [row * inv_freq, col * inv_freq], inv_freq = theta^(-2i / (head_dim/2))."""
    dim = head_dim // 2
    inv_freq = 1.0 / theta ** (np.arange(0, dim, 2, dtype=np.float64) / dim)
    f = (pos[:, :, None] * inv_freq).reshape(len(pos), -1)
    emb = np.concatenate([f, f], axis=-1)
    return np.cos(emb), np.sin(emb)


def vision_attention(w, p, x, cos, sin, cu, heads):
    """Glm4vVisionAttention.forward: fused qkv (no bias), rotate-half rotary on q and k
    (apply_rotary_pos_emb_vision), bidirectional attention inside each segment, proj (no bias)."""
    S, D = x.shape
    hd = D // heads
    q, k, v = linear(x, w(p + "qkv.weight")).reshape(S, 3, heads, hd).transpose(1, 0, 2, 3)
    c, s = cos[:, None, :], sin[:, None, :]
    q, k = q * c + rotate_half(q) * s, k * c + rotate_half(k) * s
    out = np.zeros((S, heads, hd))
    for a, b in zip(cu[:-1], cu[1:]):
        for h in range(heads):
            att = softmax(q[a:b, h] @ k[a:b, h].T * hd ** -0.5)
            out[a:b, h] = att @ v[a:b, h]
    return linear(out.reshape(S, D), w(p + "proj.weight"))


def vision_block(w, p, x, cos, sin, cu, cfg):
    """Glm4vVisionBlock.forward: x += attn(norm1(x)); x += mlp(norm2(x)), the MLP out_hidden_size wide."""
    eps = cfg["rms_norm_eps"]
    x = x + vision_attention(w, p + "attn.", rms_norm(x, w(p + "norm1.weight"), eps), cos, sin, cu, cfg["num_heads"])
    h = rms_norm(x, w(p + "norm2.weight"), eps)
    return x + linear(silu(linear(h, w(p + "mlp.gate_proj.weight"))) * linear(h, w(p + "mlp.up_proj.weight")), w(p + "mlp.down_proj.weight"))


def vision_forward(w, cfg, pixels, grids):
    """Glm4vVisionModel.forward for grids given one frame each ([1, h, w]; a video's frames are split this way by
    Glm4vModel.get_video_features). Returns the taps {vision_patch_embed, vision_embeddings, vision_block0,
    vision_downsample, embeds} in patch order (embeds = the merger's output, one row per merged token)."""
    D, m, eps = cfg["hidden_size"], cfg["spatial_merge_size"], cfg["rms_norm_eps"]
    taps = {}
    pe = w("model.visual.patch_embed.proj.weight").reshape(D, -1)  # Conv3d with kernel = stride = the patch
    x = linear(pixels, pe, w("model.visual.patch_embed.proj.bias"))
    taps["vision_patch_embed"] = x
    x = rms_norm(x, w("model.visual.post_conv_layernorm.weight"), eps)
    pos = vision_position_ids(grids, m)
    cu = vision_segments(grids)
    sizes = np.concatenate([np.tile([[h, w_]], (t * h * w_, 1)) for t, h, w_ in grids])
    x = x + interpolated_position_embedding(w("model.visual.embeddings.position_embedding.weight"), pos[:, 0], pos[:, 1], sizes[:, 0], sizes[:, 1])
    taps["vision_embeddings"] = x
    cos, sin = vision_rotary(pos, D // cfg["num_heads"])
    for j in range(cfg["depth"]):
        x = vision_block(w, f"model.visual.blocks.{j}.", x, cos, sin, cu, cfg)
        if j == 0:
            taps["vision_block0"] = x
    x = rms_norm(x, w("model.visual.post_layernorm.weight"), eps)
    # downsample: Conv2d(k = s = merge) over each window of merge*merge consecutive patches
    win = x.reshape(-1, m, m, D).transpose(0, 3, 1, 2)  # [n, D, i, j] = x[4n + 2i + j]
    y = np.einsum("ncij,ocij->no", win, w("model.visual.downsample.weight")) + w("model.visual.downsample.bias")
    taps["vision_downsample"] = y
    taps["embeds"] = vision_merger(w, y)
    return taps


def vision_merger(w, y):
    """Glm4vVisionPatchMerger.forward: proj -> LayerNorm -> GELU -> down(silu(gate) * up); no residual."""
    p = "model.visual.merger."
    z = gelu(layer_norm(linear(y, w(p + "proj.weight")), w(p + "post_projection_norm.weight"), w(p + "post_projection_norm.bias"), 1e-5))
    return linear(silu(linear(z, w(p + "gate_proj.weight"))) * linear(z, w(p + "up_proj.weight")), w(p + "down_proj.weight"))


# ---------------------------------------------------------------------------------------------- positions

def rope_index(types, image_grids, video_grids, merge):
    """Glm4vModel.get_rope_index for one unpadded sequence: `types` are mm_token_type_ids (0 text, 1 image,
    2 video placeholder). Runs of one type in order: text advances all three streams by 1 per token; an image,
    or one frame of a video (video grids are split per frame), lays its merged grid at (cur, cur + row,
    cur + col) and advances cur by max(h, w) / merge. Returns positions [3, L] and rope_delta."""
    frames = [(1, h, w) for t, h, w in video_grids for _ in range(t)]
    grids = {1: iter(image_grids), 2: iter(frames)}
    cols, cur, i, L = [], 0, 0, len(types)
    while i < L:
        j = i
        while j < L and types[j] == types[i]:
            j += 1
        if types[i] == 0:
            cols.append(np.tile(np.arange(cur, cur + j - i), (3, 1)))
            cur += j - i
        else:
            t, h, w = next(grids[types[i]])
            hm, wm = h // merge, w // merge
            tt, rr, cc = np.meshgrid(np.arange(t), np.arange(hm), np.arange(wm), indexing="ij")
            block = np.stack([tt.ravel() + cur, rr.ravel() + cur, cc.ravel() + cur])
            if block.shape[1] != j - i:
                raise ValueError(f"placeholder run at {i} has {j - i} tokens; its grid {t, h, w} needs {block.shape[1]}")
            cols.append(block)
            cur += max(h, w) // merge
        i = j
    pos = np.concatenate(cols, axis=1)
    return pos, int(pos.max()) + 1 - L


# ---------------------------------------------------------------------------------------------- decoder

def text_rotary(pos, cfg):
    """Glm4vTextRotaryEmbedding.forward + apply_mrope: 32 (real) frequency pairs over the first
    partial_rotary_factor * head_dim dims; pair j takes its position from stream t, h or w by mrope_section.
    Returns per-pair angles [L, rotary_dim / 2]."""
    hd = cfg["hidden_size"] // cfg["num_attention_heads"]
    rd = int(hd * cfg["partial_rotary_factor"])
    inv_freq = 1.0 / cfg["rope_theta"] ** (np.arange(0, rd, 2, dtype=np.float64) / rd)
    stream = np.repeat(np.arange(3), cfg["mrope_section"])  # pair j -> 0 (t), 1 (h), 2 (w)
    return pos[stream, :].T * inv_freq  # [L, rd/2]


def apply_text_rotary(x, angles):
    """apply_rotary_pos_emb: interleaved pairs (2j, 2j+1) of the first rotary dims rotate by angle j; the rest
    pass through. x [L, heads, head_dim]."""
    rd = 2 * angles.shape[1]
    c, s = np.cos(angles)[:, None, :], np.sin(angles)[:, None, :]
    even, odd = x[..., 0:rd:2], x[..., 1:rd:2]
    out = x.copy()
    out[..., 0:rd:2] = even * c - odd * s
    out[..., 1:rd:2] = odd * c + even * s
    return out


def text_attention(w, p, x, angles, cfg):
    """Glm4vTextAttention.forward, eager: q/k/v with bias, M-RoPE, causal GQA (query head h reads kv head
    h // (heads / kv_heads)), o_proj without bias."""
    L, D = x.shape
    H, KV = cfg["num_attention_heads"], cfg["num_key_value_heads"]
    hd = D // H
    q = apply_text_rotary(linear(x, w(p + "q_proj.weight"), w(p + "q_proj.bias")).reshape(L, H, hd), angles)
    k = apply_text_rotary(linear(x, w(p + "k_proj.weight"), w(p + "k_proj.bias")).reshape(L, KV, hd), angles)
    v = linear(x, w(p + "v_proj.weight"), w(p + "v_proj.bias")).reshape(L, KV, hd)
    mask = np.triu(np.full((L, L), -np.inf), 1)
    out = np.zeros((L, H, hd))
    for h in range(H):
        g = h // (H // KV)
        out[:, h] = softmax(q[:, h] @ k[:, g].T * hd ** -0.5 + mask) @ v[:, g]
    return linear(out.reshape(L, D), w(p + "o_proj.weight"))


def decoder_layer(w, p, x, angles, cfg):
    """Glm4vTextDecoderLayer.forward: the four 'sandwich' norms."""
    eps = cfg["rms_norm_eps"]
    a = text_attention(w, p + "self_attn.", rms_norm(x, w(p + "input_layernorm.weight"), eps), angles, cfg)
    x = x + rms_norm(a, w(p + "post_self_attn_layernorm.weight"), eps)
    h = rms_norm(x, w(p + "post_attention_layernorm.weight"), eps)
    gate, up = np.split(linear(h, w(p + "mlp.gate_up_proj.weight")), 2, axis=-1)
    return x + rms_norm(linear(up * silu(gate), w(p + "mlp.down_proj.weight")), w(p + "post_mlp_layernorm.weight"), eps)


def forward(w, cfg, ids, types, images=None, videos=None):
    """Glm4vForConditionalGeneration.forward on one sequence. images / videos: (pixels [N, patch], grids).
    Returns every tap: vision taps (prefixed as in vision_forward), image_embeds or video_embeds,
    inputs_embeds, hidden_states_layer0, last_hidden_state, logits, position_ids, rope_delta."""
    tc, vc = cfg["text_config"], cfg["vision_config"]
    taps = {}
    x = w("model.language_model.embed_tokens.weight")[ids]
    media = images if images is not None else videos
    if images is not None and videos is not None:
        raise ValueError("a prompt carries images or videos, not both")
    if media is not None:
        pixels, grids = media
        frames = [(1, h, w_) for t, h, w_ in grids for _ in range(t)]  # Glm4vModel.get_video_features' split
        vt = vision_forward(w, vc, pixels, frames)
        embeds = vt.pop("embeds")
        taps.update(vt)
        taps["image_embeds" if images is not None else "video_embeds"] = embeds
        slots = np.flatnonzero(ids == cfg["image_token_id"])  # video frames use the image placeholder too
        if len(slots) != len(embeds):
            raise ValueError(f"{len(slots)} placeholders for {len(embeds)} embeddings")
        x = x.copy()
        x[slots] = embeds  # masked_scatter in placeholder order
    taps["inputs_embeds"] = x
    merge = vc["spatial_merge_size"]
    pos, delta = rope_index(types, images[1] if images is not None else [], videos[1] if videos is not None else [], merge)
    angles = text_rotary(pos, tc)
    for i in range(tc["num_hidden_layers"]):
        x = decoder_layer(w, f"model.language_model.layers.{i}.", x, angles, tc)
        if i == 0:
            taps["hidden_states_layer0"] = x
    x = rms_norm(x, w("model.language_model.norm.weight"), tc["rms_norm_eps"])
    taps["last_hidden_state"] = x
    taps["logits"] = linear(x, w("lm_head.weight"))
    taps["position_ids"] = pos
    taps["rope_delta"] = delta
    return taps


def greedy(w, cfg, ids, types, steps, images=None, videos=None):
    """`steps` argmax tokens by full recompute (generated tokens are text), and the top-1 minus top-2 margins."""
    ids, types, tokens, margins = np.array(ids), np.array(types), [], []
    for _ in range(steps):
        last = forward(w, cfg, ids, types, images, videos)["logits"][-1]
        order = np.argsort(-last, kind="stable")
        tokens.append(int(order[0]))
        margins.append(float(last[order[0]] - last[order[1]]))
        ids, types = np.append(ids, order[0]), np.append(types, 0)
    return tokens, margins


def text_config(config_json):
    """The text config fields this module reads, from either hub layout (rope fields in rope_scaling or
    rope_parameters)."""
    tc = dict(config_json["text_config"])
    rope = tc.get("rope_parameters") or tc.get("rope_scaling") or {}
    tc.setdefault("rope_theta", rope.get("rope_theta", 10000.0))
    tc.setdefault("partial_rotary_factor", rope.get("partial_rotary_factor"))
    tc["mrope_section"] = rope["mrope_section"]
    return tc


def model_config(config_json):
    return {"text_config": text_config(config_json), "vision_config": config_json["vision_config"],
            "image_token_id": config_json["image_token_id"]}
