// Fills a tensor with uniform values in [-scale, scale) from a counter-based hash of (seed, element index):
// random weights of any size made on the GPU, reproducible, with no host data. One u32 word per invocation:
// a bf16/f16 word holds two elements (2i in the low half), an f32 word one. OUT_KIND: 0 f32, 1 bf16, 2 f16,
// 3 u32 (random bits, scale unused).

override WG: u32 = 256;
override OUT_KIND: u32 = 0;

struct Params { words: u32, seed: u32, scale: f32, first: u32 }

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> out: array<u32>;

// PCG-style integer hash (one round of the PCG output permutation on a mixed input).
fn hash(x: u32) -> u32 {
  let state = x * 747796405u + 2891336453u;
  let word = ((state >> ((state >> 28u) + 4u)) ^ state) * 277803737u;
  return (word >> 22u) ^ word;
}

// `first` is the index of this tensor's element 0 in a larger (row-chunked) matrix, so chunking does not change values.
fn uniform_at(i: u32) -> f32 {
  let h = hash((p.first + i) ^ hash(p.seed));
  return (f32(h >> 8u) * (1.0 / 16777216.0) * 2.0 - 1.0) * p.scale;
}

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let w = gid.x + gid.y * nwg.x * WG;
  if (w >= p.words) { return; }
  if (OUT_KIND == 0u) {
    out[w] = bitcast<u32>(uniform_at(w));
  } else if (OUT_KIND == 1u) {
    // truncating to bf16 keeps the distribution uniform enough for random weights
    let lo = bitcast<u32>(uniform_at(2u * w)) >> 16u;
    let hi = bitcast<u32>(uniform_at(2u * w + 1u)) & 0xffff0000u;
    out[w] = lo | hi;
  } else if (OUT_KIND == 2u) {
    out[w] = pack2x16float(vec2f(uniform_at(2u * w), uniform_at(2u * w + 1u)));
  } else {
    out[w] = hash((p.first + w) ^ hash(p.seed));
  }
}
