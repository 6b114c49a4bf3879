// Rotary position embeddings, applied in place to x [rows, heads·head_dim] (A; text: the first `heads` heads of
// rows x_row vec2s apart).
//   text    partial multimodal RoPE of the text decoder: dims [0, 2·pairs) of each head turn as interleaved
//           (2j, 2j+1) pairs; pair j reads position stream t for j < s0, h for j < s01, w otherwise. Row r's
//           position on stream k is positions[pos_first + k·pos_stream + r·pos_row]: a [3, rows] table
//           (0, rows, 1), or a batched decode step's rows table (ROW.ropePos, 0, ROW_FIELDS; rows.ts)
//   vision  2-D rotate-half over the whole head: pairs (d, d + head_dim/2), angle row·ω_d for d < head_dim/4,
//           col·ω_(d − head_dim/4) otherwise (coords [rows, 2] i32)
// Angles are f32(position)·ω with ω the reference's own f32 frequencies, computed on the host and passed in the
// uniforms (omega[j/4][j%4]); sin and cos come from sincos() below, accurate for angles up to 2^16.
// One invocation per row and pair (text) or per row and two neighbouring pairs (vision), looping over the heads:
// the angles are shared by all heads. x is read and written as vec2<A>.

override WG: u32 = 256;

struct Params {
  rows: u32,
  heads: u32,
  // vec2 elements per head (head_dim / 2)
  half_dim: u32,
  // text: rotating pairs per head; vision: head_dim / 4 (the vec2 pairs per half head)
  pairs: u32,
  s0: u32,
  s01: u32,
  pos_first: u32,
  pos_stream: u32,
  pos_row: u32,
  // text: vec2 elements between rows (x may be the fused q|k|v rows, of which the first `heads` heads turn)
  x_row: u32,
  pad1: u32,
  pad2: u32,
  omega: array<vec4f, 16>,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> positions: array<i32>;
@group(0) @binding(2) var<storage, read_write> x: array<vec2<A>>;

fn omega(j: u32) -> f32 {
  return p.omega[j >> 2u][j & 3u];
}

// sincos(a) comes from sincos.wgsl, prepended by the wrapper.

// (x, y) turned by the angle whose (sin, cos) is sc
fn rotate(v: vec2<A>, sc: vec2f) -> vec2<A> {
  let f = vec2f(v);
  return vec2<A>(vec2f(f.x * sc.y - f.y * sc.x, f.y * sc.y + f.x * sc.x));
}

fn invocation(wid: vec3u, nwg: vec3u, lid: u32) -> u32 {
  return (wid.x + wid.y * nwg.x) * WG + lid;
}

fn stream(j: u32) -> u32 {
  return select(select(2u, 1u, j < p.s01), 0u, j < p.s0);
}

// One invocation per (row, pair j): the angle is computed once and turns pair j of every head of the row.
@compute @workgroup_size(WG)
fn text(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let i = invocation(wid, nwg, lid);
  if (i >= p.rows * p.pairs) { return; }
  let row = i / p.pairs;
  let j = i - row * p.pairs;
  let sc = sincos(f32(positions[p.pos_first + stream(j) * p.pos_stream + row * p.pos_row]) * omega(j));
  var at = row * p.x_row + j;
  for (var h = 0u; h < p.heads; h++) {
    x[at] = rotate(x[at], sc);
    at += p.half_dim;
  }
}

fn vision_angle(d: u32, row: f32, col: f32) -> f32 {
  let quarter = p.half_dim / 2u;
  return select(col * omega(d - quarter), row * omega(d), d < quarter);
}

// One invocation per (patch, dims 2e and 2e + 1): both angles once, then those dims of every head with their
// partners 2e + head_dim/2, 2e + 1 + head_dim/2.
@compute @workgroup_size(WG)
fn vision(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let i = invocation(wid, nwg, lid);
  if (i >= p.rows * p.pairs) { return; }
  let row = i / p.pairs;
  let e = i - row * p.pairs;
  let r = f32(positions[2u * row]);
  let c = f32(positions[2u * row + 1u]);
  let sc0 = sincos(vision_angle(2u * e, r, c));
  let sc1 = sincos(vision_angle(2u * e + 1u, r, c));
  let sn = vec2f(sc0.x, sc1.x);
  let cs = vec2f(sc0.y, sc1.y);
  var at = row * p.heads * p.half_dim + e;
  for (var h = 0u; h < p.heads; h++) {
    let lo = vec2f(x[at]);
    let hi = vec2f(x[at + p.pairs]);
    x[at] = vec2<A>(lo * cs - hi * sn);
    x[at + p.pairs] = vec2<A>(hi * cs + lo * sn);
    at += p.half_dim;
  }
}
