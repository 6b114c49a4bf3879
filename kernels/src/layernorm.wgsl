// LayerNorm over the last dimension with weight and bias: y = (x − mean) / sqrt(var + eps) · w + b.
// One workgroup per row; mean first, then the variance around it (two passes, no cancellation).
// Bindings: params, x [rows, cols] (A), w [cols], b [cols], out [rows, cols] (A). workgroup_sum: workgroup_sum.wgsl.

override WG: u32 = 256;

struct Params { rows: u32, cols: u32, eps: f32 }

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<A>;
@group(0) @binding(2) var<storage, read> w: array<WS_w>;
@group(0) @binding(3) var<storage, read> b: array<WS_b>;
@group(0) @binding(4) var<storage, read_write> out: array<A>;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let row = wid.x + wid.y * nwg.x;
  if (row >= p.rows) { return; }
  let base = row * p.cols;
  var s = 0.0;
  for (var i = lid; i < p.cols; i += WG) { s += f32(x[base + i]); }
  let mean = workgroup_sum(s, lid) / f32(p.cols);
  var q = 0.0;
  for (var i = lid; i < p.cols; i += WG) {
    let d = f32(x[base + i]) - mean;
    q += d * d;
  }
  let inv = inverseSqrt(workgroup_sum(q, lid) / f32(p.cols) + p.eps);
  for (var i = lid; i < p.cols; i += WG) {
    out[base + i] = A((f32(x[base + i]) - mean) * inv * load_w(i) + load_b(i));
  }
}
