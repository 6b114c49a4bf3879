// Flash-decoding, second pass: combines the splits' partial results (first pass: attention_decode.wgsl) into each
// head's output of the rows whose keys were split (the first pass wrote the others),
// out = Σ_s 2^(m_s−M)·o_s / Σ_s 2^(m_s−M)·l_s with M = max_s m_s. One workgroup per (row, query head), one
// invocation per vec4 of the head. Row r's split count comes from its own key count, as the first pass split it.
// Prelude: A (out); then REDUCE_HEADER (attention_layout.ts): the uniform block p (rows·heads, heads per row, max_splits, the cache
// capacity and the split rule's constants), the bindings (params, part [rows·heads, max_splits, HD/4 + 1] vec4 f32,
// rows i32 [M, ROW_FIELDS], out [rows, heads·HD] A) and decode_split/row_keys.

override HD: u32 = 128;    // head dim, a multiple of 4, ≤ 128

@compute @workgroup_size(32)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let d4n = HD / 4u;
  if (lid >= d4n) { return; }
  let rh = wid.x + wid.y * nwg.x; // row · heads + head
  if (rh >= p.count) { return; }
  let splits = decode_split(row_keys(rh / p.heads, p.capacity), p.min_chunk, p.max_target).x;
  if (splits == 1u) { return; } // the first pass wrote this row's output itself
  let base = rh * p.max_splits * (d4n + 1u);
  var mx = -3.0e38;
  for (var s = 0u; s < splits; s++) { mx = max(mx, part[base + s * (d4n + 1u)].x); }
  var l = 0.0;
  var o = vec4f(0.0);
  for (var s = 0u; s < splits; s++) {
    let at = base + s * (d4n + 1u);
    let w = exp2(part[at].x - mx);
    l += w * part[at].y;
    o = fma(vec4f(w), part[at + 1u + lid], o);
  }
  out[rh * d4n + lid] = vec4<A>(o / l);
}
