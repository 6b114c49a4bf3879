// The downsample conv's weight, W [O, C, 2, 2] → W' [O, 4C] with W'[o][(2i + j)·C + ch] = W[o][ch][i][j]
// (docs/model.md#load-time-layout), so that the conv becomes a GEMM over each 2×2 merge window's four consecutive patch
// rows [x₀ | x₁ | x₂ | x₃]. Run once at load. Any dtype, moved as u32 words (16-bit types as halves of them).

override WG: u32 = 256;

struct Params {
  // output words
  words: u32,
  // input channels C
  c: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> src: array<u32>;
@group(0) @binding(2) var<storage, read_write> dst: array<u32>;

fn half_at(s: u32) -> u32 {
  return (src[s >> 1u] >> ((s & 1u) * 16u)) & 0xffffu;
}

// 16-bit W with C odd: one output word per invocation, elements e = 2w and e + 1 found one by one (two integer
// divisions for both: e's row and (q, ch), then e + 1 is the next channel, carrying into q and the row).
@compute @workgroup_size(WG)
fn permute_downsample(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let w = (wid.x + wid.y * nwg.x) * WG + lid;
  if (w >= p.words) { return; }
  let width = 4u * p.c;
  let e = 2u * w;
  var row = e / width;
  let k = e - row * width; // (2i + j)·C + ch
  var q = k / p.c;
  var ch = k - q * p.c;
  let first = half_at(row * width + ch * 4u + q);
  ch += 1u;
  if (ch == p.c) { ch = 0u; q += 1u; }
  if (q == 4u) { q = 0u; row += 1u; }
  dst[w] = first | (half_at(row * width + ch * 4u + q) << 16u);
}

// 32-bit W: one invocation per (o, ch); W[o][ch][·][·] is four consecutive words, element q = 2i + j of them goes
// to W'[o][q·C + ch].
@compute @workgroup_size(WG)
fn permute_downsample_wide(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let t = (wid.x + wid.y * nwg.x) * WG + lid; // o · C + ch
  if (4u * t >= p.words) { return; }
  let o = t / p.c;
  let dst_at = o * 3u * p.c + t; // o·4C + ch
  for (var q = 0u; q < 4u; q++) { dst[dst_at + q * p.c] = src[4u * t + q]; }
}

// 16-bit W with C even: one invocation per (o, channel pair ch, ch + 1). W[o][ch][·][·] and W[o][ch + 1][·][·] are
// four consecutive words, (i, j) = (0, 0), (0, 1) in the first and (1, 0), (1, 1) in the second of each; output
// word q·C/2 + ch/2 of row o takes element q of both channels.
@compute @workgroup_size(WG)
fn permute_downsample_pairs(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let t = (wid.x + wid.y * nwg.x) * WG + lid; // o · C/2 + ch/2
  if (4u * t >= p.words) { return; }
  let half_c = p.c / 2u;
  let o = t / half_c;
  let dst_at = o * 2u * p.c + (t - o * half_c); // word index of (o, q = 0, ch)
  let a = vec2u(src[4u * t], src[4u * t + 1u]); // channel ch: q = 0, 1 | q = 2, 3
  let b = vec2u(src[4u * t + 2u], src[4u * t + 3u]); // channel ch + 1
  dst[dst_at] = (a.x & 0xffffu) | (b.x << 16u);
  dst[dst_at + half_c] = (a.x >> 16u) | (b.x & 0xffff0000u);
  dst[dst_at + 2u * half_c] = (a.y & 0xffffu) | (b.y << 16u);
  dst[dst_at + 3u * half_c] = (a.y >> 16u) | (b.y & 0xffff0000u);
}
