// RMSNorm over the last dimension: y = x / sqrt(mean(x²) + eps) · w, one workgroup per row, f32 accumulation.
// Bindings: params, x [rows, cols] (A), w [cols] (WS_w, read through load_w), out [rows, cols] (A).
// workgroup_sum: workgroup_sum.wgsl.

override WG: u32 = 256;

struct Params { rows: u32, cols: u32, eps: f32 }

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<A>;
@group(0) @binding(2) var<storage, read> w: array<WS_w>;
@group(0) @binding(3) var<storage, read_write> out: array<A>;

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
  let inv = inverseSqrt(workgroup_sum(ss, lid) / f32(p.cols) + p.eps);
  for (var i = lid; i < p.cols; i += WG) { out[base + i] = A(f32(x[base + i]) * inv * load_w(i)); }
}
