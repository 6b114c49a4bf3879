// Flash-decoding, second pass: combines the splits' partial results (first pass: attention.wgsl or
// attention_broadcast.wgsl with `partial`) into each head's output,
// out = Σ_s 2^(m_s−M)·o_s / Σ_s 2^(m_s−M)·l_s with M = max_s m_s. One workgroup per query head, one invocation
// per vec4 of the head.
// Prelude: A (out). Bindings: params, part [heads, max_splits, HD/4 + 1] vec4 (f32), out [heads·HD] (A).

override HD: u32 = 128;    // head dim, a multiple of 4, ≤ 128

struct Params { splits: u32, max_splits: u32 }

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> part: array<vec4f>;
@group(0) @binding(2) var<storage, read_write> out: array<vec4<A>>;

@compute @workgroup_size(32)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let d4n = HD / 4u;
  if (lid >= d4n) { return; }
  let head = wid.x;
  let base = head * p.max_splits * (d4n + 1u);
  var mx = -3.0e38;
  for (var s = 0u; s < p.splits; s++) { mx = max(mx, part[base + s * (d4n + 1u)].x); }
  var l = 0.0;
  var o = vec4f(0.0);
  for (var s = 0u; s < p.splits; s++) {
    let at = base + s * (d4n + 1u);
    let w = exp2(part[at].x - mx);
    l += w * part[at].y;
    o = fma(vec4f(w), part[at + 1u + lid], o);
  }
  out[head * d4n + lid] = vec4<A>(o / l);
}
