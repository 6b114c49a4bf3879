// RMSNorm over the last dimension: y = x / sqrt(mean(x²) + eps) · w, one workgroup per row, f32 accumulation.
// ADD: accumulate into `out` instead of overwriting it (the decoder's "residual + RMSNorm(branch)").
// Bindings: params, x [rows, cols] (A), w [cols] (WS_w, read through load_w), out [rows, cols] (A).

override WG: u32 = 256;
override ADD: bool = false;

struct Params { rows: u32, cols: u32, eps: f32 }

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<A>;
@group(0) @binding(2) var<storage, read> w: array<WS_w>;
@group(0) @binding(3) var<storage, read_write> out: array<A>;

var<workgroup> partial: array<f32, WG>;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let row = wid.x + wid.y * nwg.x;
  if (row >= p.rows) { return; } // uniform per workgroup, so the barriers below stay uniform
  let base = row * p.cols;
  var ss = 0.0;
  for (var i = lid; i < p.cols; i += WG) {
    let v = f32(x[base + i]);
    ss += v * v;
  }
  partial[lid] = ss;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s >>= 1u) {
    if (lid < s) { partial[lid] += partial[lid + s]; }
    workgroupBarrier();
  }
  let inv = inverseSqrt(partial[0] / f32(p.cols) + p.eps);
  for (var i = lid; i < p.cols; i += WG) {
    let y = f32(x[base + i]) * inv * load_w(i);
    if (ADD) { out[base + i] = A(f32(out[base + i]) + y); } else { out[base + i] = A(y); }
  }
}
