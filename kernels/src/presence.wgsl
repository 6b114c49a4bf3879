// Repetition-penalty bookkeeping: sets bit id of one slot's presence table (V bits in ceil(V/32) u32 words, from
// word `first`) for each id in ids (i32 or u32, read as u32). Ids outside [0, vocab) are ignored (a negative i32
// reads as ≥ 2^31).
// Bindings: params, ids [count] (read), presence [slots, words] (read_write, atomic).

override WG: u32 = 64;

struct Params { count: u32, vocab: u32, first: u32 }

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> ids: array<u32>;
@group(0) @binding(2) var<storage, read_write> presence: array<atomic<u32>>;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let j = (wid.x + wid.y * nwg.x) * WG + lid;
  if (j >= p.count) { return; }
  let id = ids[j];
  if (id < p.vocab) { atomicOr(&presence[p.first + (id >> 5u)], 1u << (id & 31u)); }
}
