// The decoder's residual add fused with the RMSNorm that follows it, one workgroup per row, f32 accumulation:
//   x   += y / sqrt(mean(y²) + eps) · w1   (a branch's closing norm added into the residual stream x, in place)
//   out  = x / sqrt(mean(x²) + eps) · w2   (the next norm, over the updated x as stored)
// Each invocation re-reads only the elements of x it wrote itself, so no barrier separates the write from the
// read; the second sum of squares is over the stored (A-rounded) x, so out equals a separate rmsnorm of x.
// Bindings: params, y [rows, cols] (A), w1, w2 [cols] (WS_w1, WS_w2, read through load_w1, load_w2),
// x [rows, cols] (A, read and written), out [rows, cols] (A). workgroup_sum: workgroup_sum.wgsl.

override WG: u32 = 256;

struct Params { rows: u32, cols: u32, eps: f32 }

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> y: array<A>;
@group(0) @binding(2) var<storage, read> w1: array<WS_w1>;
@group(0) @binding(3) var<storage, read> w2: array<WS_w2>;
@group(0) @binding(4) var<storage, read_write> x: array<A>;
@group(0) @binding(5) var<storage, read_write> out: array<A>;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let row = wid.x + wid.y * nwg.x;
  if (row >= p.rows) { return; } // uniform per workgroup, so the barriers below stay uniform
  let base = row * p.cols;
  var sy = 0.0;
  for (var i = lid; i < p.cols; i += WG) {
    let v = f32(y[base + i]);
    sy += v * v;
  }
  let inv_y = inverseSqrt(workgroup_sum(sy, lid) / f32(p.cols) + p.eps);
  var sx = 0.0;
  for (var i = lid; i < p.cols; i += WG) {
    let v = f32(A(f32(x[base + i]) + f32(y[base + i]) * inv_y * load_w1(i)));
    x[base + i] = A(v);
    sx += v * v;
  }
  let inv_x = inverseSqrt(workgroup_sum(sx, lid) / f32(p.cols) + p.eps);
  for (var i = lid; i < p.cols; i += WG) { out[base + i] = A(f32(x[base + i]) * inv_x * load_w2(i)); }
}
