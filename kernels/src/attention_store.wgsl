// Writes new key and value rows into a KV cache: k, v [rows, kv_heads·HD] (A) → cache rows start + [0, rows) of
// kc, vc [kv_heads, capacity, HD] (KV). Rows at or past the capacity are skipped, so a decode position the caller
// let run past the cache never writes out of bounds. One invocation per vec4 of k (and the same of v).
// Prelude: A, KV. Bindings: params, k (A), v (A), kc (KV), vc (KV).

override WG: u32 = 256;

struct Params { rows: u32, kv_heads: u32, hd4: u32, start: u32, capacity: u32 }

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> k: array<vec4<A>>;
@group(0) @binding(2) var<storage, read> v: array<vec4<A>>;
@group(0) @binding(3) var<storage, read_write> kc: array<vec4<KV>>;
@group(0) @binding(4) var<storage, read_write> vc: array<vec4<KV>>;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let i = (wid.x + wid.y * nwg.x) * WG + lid;
  if (i >= p.rows * p.kv_heads * p.hd4) { return; }
  let d = i % p.hd4;
  let h = (i / p.hd4) % p.kv_heads;
  let pos = p.start + i / (p.hd4 * p.kv_heads);
  if (pos >= p.capacity) { return; }
  let at = (h * p.capacity + pos) * p.hd4 + d;
  kc[at] = vec4<KV>(k[i]);
  vc[at] = vec4<KV>(v[i]);
}
