// Writes new key and value rows into a KV cache: k, v [rows, kv_heads·HD] (A) → kc, vc [slots, kv_heads, capacity,
// HD] (KV). Row i goes to position start + i of slot `slot` (prefill), or with `ragged` (a batched decode step) to
// position pos_i of slot slot_i from the rows table. Positions at or past the capacity and slots past the last are
// skipped, so a row the caller let run past its cache never writes out of bounds. One invocation per vec4 of k (and
// the same of v).
// Prelude: A, KV; then STORE_HEADER (attention_layout.ts): the row fields, the uniform block p and the bindings (params,
// k (A), v (A), rows i32 [M, ROW_FIELDS], kc (KV), vc (KV)).

override WG: u32 = 256;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let i = (wid.x + wid.y * nwg.x) * WG + lid;
  if (i >= p.rows * p.kv_heads * p.hd4) { return; }
  let d = i % p.hd4;
  let h = (i / p.hd4) % p.kv_heads;
  let row = i / (p.hd4 * p.kv_heads);
  var slot = p.slot;
  var pos = p.start + row;
  if (p.ragged != 0u) {
    let at = row * ROW_FIELDS;
    if (rows[at + ROW_SLOT] < 0 || rows[at + ROW_POS] < 0) { return; }
    slot = u32(rows[at + ROW_SLOT]);
    pos = u32(rows[at + ROW_POS]);
  }
  if (pos >= p.capacity || slot >= p.slots) { return; }
  let at = ((slot * p.kv_heads + h) * p.capacity + pos) * p.hd4 + d;
  kc[at] = vec4<KV>(k[i]);
  vc[at] = vec4<KV>(v[i]);
}
