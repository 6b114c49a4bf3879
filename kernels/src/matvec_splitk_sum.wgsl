// The second pass of a split-K matvec (matvec.wgsl, matvec_quant.wgsl with more than one K slice): y[m, n] =
// Σ_s part[s, m, n] (+ b[n]), one invocation per output, the slices added in order (no atomics: the result does not
// depend on which workgroup finished first). The wrapper prepends the dtype prelude (A, load_b) and the uniform
// struct Params (M, N, slices, has_bias; linear-common.ts).

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> part: array<f32>; // [slices, M, N]
@group(0) @binding(2) var<storage, read> b: array<WS_b>;
@group(0) @binding(3) var<storage, read_write> y: array<A>; // [M, N]

override WG: u32 = 256u;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let i = (wid.x + wid.y * nwg.x) * WG + lid;
  let mn = p.M * p.N;
  if (i >= mn) { return; }
  var v = 0.0;
  for (var s = 0u; s < p.slices; s++) { v += part[s * mn + i]; }
  if (p.has_bias != 0u) { v += load_b(i % p.N); }
  y[i] = A(v);
}
