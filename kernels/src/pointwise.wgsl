// Elementwise kernels, one V per invocation. The wrapper's alias lines pick the width: V = vec4<A> (with
// VF/VU/VI = vec4f/vec4u/vec4i) when the sizes allow, else V = A (f32/u32/i32). Arithmetic is f32 (VF).
//   silu_mul_fused  out[m, i] = silu(gu[m, i]) · gu[m, I + i]      a = gu [M, 2I] (gate | up halves), out [M, I]
//   silu_mul        out = silu(gate) · up                          a = gate, b = up
//   gelu            out = 0.5·x·(1 + erf(x/√2)), exact erf         a = x
//   add             out = a + b
//   add_inplace     acc += a                                       acc bound read-write at 2
// Single-input ops write `out1` (binding 2); two-input ops write `out` (binding 3).

override WG: u32 = 256;

struct Params {
  // V elements of the output
  n: u32,
  // V elements per output row (silu_mul_fused: the offset of the up half is a row's own width)
  cols: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<V>;
@group(0) @binding(2) var<storage, read> b: array<V>;
@group(0) @binding(3) var<storage, read_write> out: array<V>;
@group(0) @binding(2) var<storage, read_write> out1: array<V>;

fn silu(x: VF) -> VF {
  return x / (1.0 + exp(-x)); // x → −∞: exp overflows to inf and the quotient is −0, as it should be
}

// e^(hi + lo) for hi ≤ 0 down to about −104, |lo| small: k = round((hi + lo)/ln2), r = hi − k·ln2 + lo with ln2
// in two pieces (the first of 16 significant bits, so k·piece is exact for |k| < 256), then a degree-6
// minimax polynomial on |r| ≤ ln2/2 (tools/fit-kernel-polys.py), scaled by 2^k.
fn exp_hl(hi: VF, lo: VF) -> VF {
  let k = round((hi + lo) * 1.442695);
  let r = (hi - k * 0.693145751953125) - k * 1.4286068203094172e-06 + lo;
  let q = 0.49999991 + r * (0.16666497 + r * (0.041668668 + r * (0.0083714956 + r * 0.0013808848)));
  return ldexp(1.0 + r + r * r * q, VI(k));
}

// GELU with an exact erf, through Φ(−|x|) = erfc(|x|/√2)/2, which is computed with a small relative error
// everywhere: erfc(z) = e^(−z²)·R(t), t = 1/(1 + z/2), R a degree-9 minimax polynomial (relative error 3e-8 on
// z ∈ [0, 10], tools/fit-kernel-polys.py). e^(−z²) = e^(−x²/2) is taken from x split into a 12-bit head and a
// tail, so the exponent is exact to f32 rounding however large it is. Then gelu = x·(1 − Φ(−x)) for x ≥ 0 and
// x·Φ(−|x|) for x < 0: no cancellation on either side; under 4e-7 relative error over [−13, 13] (measured).
fn gelu(x: VF) -> VF {
  let ax = min(abs(x), VF(14.0)); // Φ(−14) ≈ 8e-45: past 14 the tail is below f32's smallest normal anyway
  let t = 1.0 / (1.0 + ax * 0.35355339);
  let rt = -6.011268851580098e-06 + t * (0.28222138 + t * (0.28109843 + t * (0.24979347 + t * (0.18124999 + t * (0.017077468
    + t * (0.22119118 + t * (-0.44147778 + t * (0.26390314 + t * -0.055051297))))))));
  let xh = bitcast<VF>(bitcast<VU>(ax) & VU(0xfffff000u));
  let xl = ax - xh;
  let tail = 0.5 * exp_hl(-0.5 * xh * xh, -0.5 * xl * (ax + xh)) * rt; // Φ(−|x|)
  return x * select(tail, 1.0 - tail, x >= VF(0.0));
}

fn invocation(wid: vec3u, nwg: vec3u, lid: u32) -> u32 {
  return (wid.x + wid.y * nwg.x) * WG + lid;
}

@compute @workgroup_size(WG)
fn silu_mul_fused(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let i = invocation(wid, nwg, lid);
  if (i >= p.n) { return; }
  let at = i + (i / p.cols) * p.cols; // row·2I + col
  out1[i] = V(silu(VF(a[at])) * VF(a[at + p.cols]));
}

@compute @workgroup_size(WG)
fn silu_mul(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let i = invocation(wid, nwg, lid);
  if (i >= p.n) { return; }
  out[i] = V(silu(VF(a[i])) * VF(b[i]));
}

@compute @workgroup_size(WG)
fn gelu_erf(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let i = invocation(wid, nwg, lid);
  if (i >= p.n) { return; }
  out1[i] = V(gelu(VF(a[i])));
}

@compute @workgroup_size(WG)
fn add(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let i = invocation(wid, nwg, lid);
  if (i >= p.n) { return; }
  out[i] = V(VF(a[i]) + VF(b[i]));
}

@compute @workgroup_size(WG)
fn add_inplace(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let i = invocation(wid, nwg, lid);
  if (i >= p.n) { return; }
  out1[i] = V(VF(out1[i]) + VF(a[i]));
}
