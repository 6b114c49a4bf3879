// f16 copies of bf16 or f32 weights, made once at load for the tensor-core matmul's f16 operands
// (matmul_subgroup_matrix.wgsl). bf16 → f16 is exact for |v| in [2⁻¹⁴, 65504] (bf16 keeps 8 significant bits, f16
// 11); smaller values become f16 subnormals or 0. Values beyond ±65504, infinities and NaNs are not written (0
// instead) but counted in bad[0], which the wrapper turns into an error naming the tensor.
// One output word (two f16 elements, 2i in the low half) per invocation. SRC_F32: the source is f32 [n], else bf16
// pairs.

override WG: u32 = 256;
override SRC_F32: bool = false;

struct Params { words: u32, n: u32 }

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<u32>;
@group(0) @binding(2) var<storage, read_write> y: array<u32>;
@group(0) @binding(3) var<storage, read_write> bad: array<atomic<u32>>;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * WG;
  if (i >= p.words) { return; }
  var v: vec2f;
  if (SRC_F32) {
    // an odd count leaves the last word's high half empty
    v = vec2f(bitcast<f32>(x[2u * i]), select(0.0, bitcast<f32>(x[min(2u * i + 1u, p.n - 1u)]), 2u * i + 1u < p.n));
  } else {
    let w = x[i];
    v = vec2f(bitcast<f32>(w << 16u), bitcast<f32>(w & 0xffff0000u));
  }
  let ok = abs(v) <= vec2f(65504.0); // false for ±inf and NaN too
  if (!all(ok)) { atomicAdd(&bad[0], u32(!ok.x) + u32(!ok.y)); }
  y[i] = pack2x16float(select(vec2f(0.0), v, ok));
}
