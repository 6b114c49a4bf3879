// Writes a prefill chunk's new key and value rows into a KV cache: from the fused q|k|v rows qkv [rows, src_row]
// (A; k at vec4 k_off of each row, v at v_off, kv_heads·HD each) to kc, vc [slots, kv_heads, capacity, HD] (KV),
// row i at position start + i of slot `slot`. Positions at or past the capacity are skipped. One invocation per
// vec4 of k (and the same of v). Decode stores its one new row inside attention_decode.wgsl.
// Prelude: A, KV; then STORE_HEADER (attention_layout.ts): the uniform block p and the bindings (params, qkv (A),
// kc (KV), vc (KV)).

override WG: u32 = 256;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let i = (wid.x + wid.y * nwg.x) * WG + lid;
  if (i >= p.rows * p.kv_heads * p.hd4) { return; }
  let e = i % (p.kv_heads * p.hd4); // kv head · hd4 + vec4
  let row = i / (p.kv_heads * p.hd4);
  let pos = p.start + row;
  if (pos >= p.capacity) { return; }
  let at = ((p.slot * p.kv_heads + e / p.hd4) * p.capacity + pos) * p.hd4 + e % p.hd4;
  kc[at] = vec4<KV>(qkv[row * p.src_row + p.k_off + e]);
  vc[at] = vec4<KV>(qkv[row * p.src_row + p.v_off + e]);
}
