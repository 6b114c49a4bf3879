"""Image and video preprocessing of GLM-4.1V in numpy, written from upstream transformers' glm4v processors
(smart_resize, Glm4vImageProcessor._preprocess, Glm4vVideoProcessor.sample_frames / _preprocess,
Glm4vProcessor.replace_video_token). No resampling: the inputs given here must already have the size smart_resize
picks (the conformance images and video frames are chosen so); a size that would need a resize is an error."""

import math

import numpy as np


def smart_resize(num_frames, height, width, temporal_factor=2, factor=28, min_pixels=112 * 112, max_pixels=14 * 14 * 2 * 2 * 2 * 6144):
    """image_processing_glm4v.smart_resize: (h, w) multiples of `factor` with t*h*w within the pixel budget."""
    if num_frames < temporal_factor:
        raise ValueError(f"t:{num_frames} must be larger than temporal_factor:{temporal_factor}")
    if height < factor or width < factor:
        scale = max(factor / height, factor / width)
        height, width = int(height * scale), int(width * scale)
    if max(height, width) / min(height, width) > 200:
        raise ValueError("absolute aspect ratio must be smaller than 200")
    h_bar = round(height / factor) * factor  # Python's round: half to even
    w_bar = round(width / factor) * factor
    t_bar = round(num_frames / temporal_factor) * temporal_factor
    if t_bar * h_bar * w_bar > max_pixels:
        beta = math.sqrt((num_frames * height * width) / max_pixels)
        h_bar = max(factor, math.floor(height / beta / factor) * factor)
        w_bar = max(factor, math.floor(width / beta / factor) * factor)
    elif t_bar * h_bar * w_bar < min_pixels:
        beta = math.sqrt(min_pixels / (num_frames * height * width))
        h_bar = math.ceil(height * beta / factor) * factor
        w_bar = math.ceil(width * beta / factor) * factor
    return h_bar, w_bar


def normalize(rgb, cfg):
    """Rescale by rescale_factor and normalise per channel: [T, H, W, 3] uint8 -> [T, 3, H, W] float64."""
    x = rgb.astype(np.float64) * cfg["rescale_factor"]
    x = (x - np.array(cfg["image_mean"])) / np.array(cfg["image_std"])
    return x.transpose(0, 3, 1, 2)


def patchify(frames, cfg):
    """[T, C, H, W] (T a multiple of temporal_patch_size) -> [T/tp * gh * gw, C * tp * p * p]: patches in
    (temporal patch, window row, window col, row in window, col in window) order, each flattened as
    (channel, frame, y, x) (the view/permute of Glm4vImageProcessor._preprocess and Glm4vVideoProcessor._preprocess)."""
    T, C, H, W = frames.shape
    tp, p, m = cfg["temporal_patch_size"], cfg["patch_size"], cfg["merge_size"]
    gt, gh, gw = T // tp, H // p, W // p
    x = frames.reshape(gt, tp, C, gh // m, m, p, gw // m, m, p)
    x = x.transpose(0, 3, 6, 4, 7, 2, 1, 5, 8)
    return x.reshape(gt * gh * gw, C * tp * p * p), [gt, gh, gw]


def check_size(num_frames, h, w, cfg, min_pixels, max_pixels):
    factor = cfg["patch_size"] * cfg["merge_size"]
    want = smart_resize(num_frames, h, w, cfg["temporal_patch_size"], factor, min_pixels, max_pixels)
    if want != (h, w):
        raise ValueError(f"a {h}x{w} input would be resized to {want[0]}x{want[1]}; this tool does not resample")


def preprocess_image(rgb, cfg):
    """Glm4vImageProcessor on one [H, W, 3] image that needs no resize: the frame repeated temporal_patch_size
    times, then patchified. Returns (pixel_values, grid [1, gh, gw])."""
    check_size(cfg["temporal_patch_size"], rgb.shape[0], rgb.shape[1], cfg, cfg["size"]["shortest_edge"], cfg["size"]["longest_edge"])
    frames = np.repeat(normalize(rgb[None], cfg), cfg["temporal_patch_size"], axis=0)
    return patchify(frames, cfg)


def sample_frames(fps, total_frames, duration, requested_fps=2, max_duration=300):
    """Glm4vVideoProcessor.sample_frames: frame indices at `requested_fps` (up to max_duration seconds), duplicates
    dropped keeping the first, an odd count padded with the last index."""
    video_fps = fps or 2.0
    max_idx = total_frames - 1
    duration = duration or round(max_idx / video_fps) + 1
    if duration <= max_duration:
        n = int(math.floor(duration * requested_fps))
        idx = [min(max_idx, int(math.ceil(i * video_fps / requested_fps))) for i in range(n)]
    else:
        num = int(max_duration * requested_fps)
        idx = list(range(total_frames)) if num >= total_frames else [min(max_idx, int(math.ceil(t * video_fps))) for t in np.linspace(0, duration, num)]
    uniq = list(dict.fromkeys(idx))
    if len(uniq) % 2:
        uniq.append(uniq[-1])
    return uniq


def preprocess_video(frames, fps, cfg, min_pixels=112 * 112, max_pixels=28 * 28 * 2 * 30000):
    """Glm4vVideoProcessor on all frames [N, H, W, 3] of a clip at `fps`: sampled frames, patchified by temporal
    pairs; timestamps (seconds, one per temporal patch: the first frame of each pair, as
    Glm4vProcessor.replace_video_token takes metadata.timestamps[::2]). Returns (pixel_values_videos,
    grid [gt, gh, gw], sampled frame indices, timestamps)."""
    n = len(frames)
    idx = sample_frames(fps, n, n / fps)
    check_size(len(idx), frames.shape[1], frames.shape[2], cfg, min_pixels, max_pixels)
    pixels, grid = patchify(normalize(frames[idx], cfg), cfg)
    timestamps = [i / fps for i in idx][::2][: grid[0]]
    return pixels, grid, idx, timestamps
