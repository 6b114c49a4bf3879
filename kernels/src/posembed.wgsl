// The learned ViT position table [G·G, C] (row = G·r + c) resampled bicubically to each patch's own grid, with
// PyTorch grid_sample semantics (mode bicubic, align_corners = false, padding border: every tap index clamped to
// [0, G−1]; Keys cubic with A = −0.75), docs/model.md#position-embedding. One workgroup per patch, its invocations striding over C.
// Bindings: params, patches [S, 4] i32 = (r, c, gh, gw), table [G·G, C] (WS_w via load_w), out [S, C] (A).
// ADD: out += E (the embeddings X₁ + E) instead of out = E.

override WG: u32 = 256;
override ADD: bool = false;
// C is even: each invocation does channel pairs (see main)
override PAIRS: bool = false;

struct Params { rows: u32, cols: u32, grid: u32 }

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> patches: array<i32>;
@group(0) @binding(2) var<storage, read> w: array<WS_w>;
@group(0) @binding(3) var<storage, read_write> out: array<A>;

const CUBIC_A = -0.75;

// |u| ≤ 1 and 1 < |u| < 2 pieces of the Keys kernel, as PyTorch writes them (cubic_convolution1/2)
fn k1(u: f32) -> f32 { return ((CUBIC_A + 2.0) * u - (CUBIC_A + 3.0)) * u * u + 1.0; }
fn k2(u: f32) -> f32 { return ((CUBIC_A * u - 5.0 * CUBIC_A) * u + 8.0 * CUBIC_A) * u - 4.0 * CUBIC_A; }

struct Taps {
  // the four table indices along this axis, each clamped (border padding)
  at: vec4i,
  weight: vec4f,
}

// Output index i of n samples over a table side of g: the source position (i + 0.5)·g/n − 0.5 is the fraction
// ((2i + 1)·g − n) / (2n), floored in integers, so the fraction t is exactly 0 where the position is whole (n = g
// reproduces the table bit for bit; at t = 0 the weights are exactly 0, 1, 0, 0).
fn taps(i: i32, n: i32, g: i32) -> Taps {
  let num = (2 * i + 1) * g - n;
  let den = 2 * n;
  let q = select(num / den, -((den - 1 - num) / den), num < 0);
  let t = f32(num - q * den) / f32(den);
  let at = clamp(vec4i(q - 1, q, q + 1, q + 2), vec4i(0), vec4i(g - 1));
  return Taps(at, vec4f(k2(t + 1.0), k1(t), k1(1.0 - t), k2(2.0 - t)));
}

// One row of 4 taps weighted along x: `at` holds the 4 element offsets of the row's taps for channel 0.
fn line(at: vec4u, wx: vec4f, ch: u32) -> f32 {
  return dot(wx, vec4f(load_w(at.x + ch), load_w(at.y + ch), load_w(at.z + ch), load_w(at.w + ch)));
}

// E at channel ch: the 4 rows of taps weighted along x, then along y (PyTorch's order: cubic_interp1d over x for
// each row, then over y). Written out rather than looped: per-invocation arrays indexed in a loop are slow on
// CPU adapters.
fn resample(rows: vec4u, cols: vec4u, wx: vec4f, wy: vec4f, ch: u32) -> f32 {
  return wy.x * line(cols + rows.x, wx, ch) + wy.y * line(cols + rows.y, wx, ch) + wy.z * line(cols + rows.z, wx, ch)
    + wy.w * line(cols + rows.w, wx, ch);
}

fn store(at: u32, e: f32) {
  if (ADD) { out[at] = A(f32(out[at]) + e); } else { out[at] = A(e); }
}

// Channels 2k and 2k + 1 (even C): `at` holds the tap offsets in pairs of elements, and both elements are read as
// load_w(2m), load_w(2m + 1), a form in which the compiler sees one word of a 16-bit table and reads it once.
fn line2(at: vec4u, wx: vec4f, k: u32) -> vec2f {
  let m = 2u * (at + vec4u(k));
  let lo = vec4f(load_w(m.x), load_w(m.y), load_w(m.z), load_w(m.w));
  let hi = vec4f(load_w(m.x + 1u), load_w(m.y + 1u), load_w(m.z + 1u), load_w(m.w + 1u));
  return vec2f(dot(wx, lo), dot(wx, hi));
}

fn resample2(rows: vec4u, cols: vec4u, wx: vec4f, wy: vec4f, k: u32) -> vec2f {
  return wy.x * line2(cols + rows.x, wx, k) + wy.y * line2(cols + rows.y, wx, k) + wy.z * line2(cols + rows.z, wx, k)
    + wy.w * line2(cols + rows.w, wx, k);
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let s = wid.x + wid.y * nwg.x;
  if (s >= p.rows) { return; }
  let g = i32(p.grid);
  let ty = taps(patches[4u * s], patches[4u * s + 2u], g); // rows: y, the height axis
  let tx = taps(patches[4u * s + 1u], patches[4u * s + 3u], g); // columns: x, the width axis
  // element offsets of the taps: table row G·y + x, times C
  let rows = vec4u(ty.at * g) * p.cols;
  let cols = vec4u(tx.at) * p.cols;
  let base = s * p.cols;
  if (PAIRS) {
    // even C: channels 2k and 2k + 1 together, so a 16-bit table's word is read once for both
    let half = p.cols / 2u;
    let rows2 = vec4u(ty.at * g) * half;
    let cols2 = vec4u(tx.at) * half;
    for (var k = lid; k < half; k += WG) {
      let e = resample2(rows2, cols2, tx.weight, ty.weight, k);
      store(base + 2u * k, e.x);
      store(base + 2u * k + 1u, e.y);
    }
  } else {
    for (var ch = lid; ch < p.cols; ch += WG) { store(base + ch, resample(rows, cols, tx.weight, ty.weight, ch)); }
  }
}
