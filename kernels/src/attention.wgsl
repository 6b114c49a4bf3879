// Flash attention with an online softmax (GPUs): causal grouped-query prefill over the KV cache, segment-restricted
// vision attention, and the first pass of flash-decoding. f32 accumulation; no score matrix anywhere.
//
// Rows: the queries of one kv head are numbered (position, head within the group): row ρ is position ρ / group of
// query head kvh·group + ρ % group. A workgroup takes WG consecutive rows of one kv head, one per invocation, with
// the row's scaled q and its output accumulator in registers. It walks its keys in tiles of BK rows of K and V,
// staged in workgroup memory by all invocations together; each invocation then scores the tile's keys against its
// row and folds them into a running max and sum (base 2: the scale carries log2 e) and its accumulator.
//
// A dispatch covers `segs` segments: segment s holds queries at positions q_first + s·seg_len + [0, seg_len) of q
// and keys at rows k_first + s·seg_len + [0, kv_len) of k and v. With `causal`, position i of a segment sees keys
// [0, shift + i] only (prefill: shift = start). The keys are split into `splits` chunks of `chunk` keys; without
// `partial` there is one chunk and out gets the normalised result; with it (flash-decoding) out gets each row's
// partial result (max m, sum l, unnormalised output) for attention_reduce.wgsl. Causality, grouping and the
// output form are uniforms rather than overrides, so prefill, decode and vision share one pipeline per head dim.
// A prefill into cache slot s reads kv heads from kv_head0 = s·kv_heads. Flash-decoding (`partial`) runs a batch
// of sequences: segment r is row r of the rows table, one query position whose keys are positions [0, pos_r] of
// slot_r (kv_len is then the capacity), split by its own key count (keys_of in attention_layout.ts).
// attention_broadcast.wgsl does the same work without workgroup memory, for CPU adapters.
//
// Prelude: A (q), KV (k, v), O (out: A, or f32 for partial results); then the uniform block p, the bindings
// (params, q, k, v, rows, out; all vec4 but rows, i32 [M, ROW_FIELDS]) and keys_of (a workgroup's keys), from
// FLASH_HEADER in attention_layout.ts, shared with attention_broadcast.wgsl.
//   out: laid out like q; partial results: [rows·heads, max_splits, HD/4 + 1] vec4, entry 0 = (m, l, 0, 0).

override WG: u32 = 64;        // rows per workgroup, one per invocation
override BK: u32 = 16;        // keys per tile, ≤ 32
override HD: u32 = 128;       // head dim, a multiple of 4, ≤ 128

const MAX_D4 = 32u;           // HD / 4 at most
const MAX_BK = 32u;
const NEG = -3.0e38;          // a finite −∞: exp2(NEG − m) is 0 for any finite m

var<workgroup> kt: array<vec4f, BK * HD / 4u>;
var<workgroup> vt: array<vec4f, BK * HD / 4u>;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let flat = wid.x + wid.y * nwg.x;
  let kvh = flat % p.kv_heads;
  let tile = (flat / p.kv_heads) % p.tiles;
  let split = (flat / (p.kv_heads * p.tiles)) % p.splits;
  let seg = flat / (p.kv_heads * p.tiles * p.splits);
  if (seg >= p.segs) { return; } // uniform per workgroup, so the barriers below stay uniform
  let ks = keys_of(seg, split, kvh);
  if (!ks.live) { return; }
  let d4n = HD / 4u;
  let qrows = p.seg_len * p.group; // query rows of the segment
  let row = min(tile * WG + lid, qrows - 1u); // invocations past the segment redo its last row, unwritten
  let pos = row / p.group;
  let head = kvh * p.group + row % p.group;
  let qat = (p.q_first + seg * p.seg_len + pos) * p.q_row + head * d4n;

  var qv: array<vec4f, MAX_D4>;
  var o: array<vec4f, MAX_D4>;
  for (var d = 0u; d < d4n; d++) {
    qv[d] = vec4f(q[qat + d]) * p.scale;
    o[d] = vec4f(0.0);
  }
  // The workgroup's keys: its chunk, cut at the causal limit of its last row; this row's own limit.
  var j1 = ks.j1;
  var lim = ks.kv_len;
  if (p.causal != 0u) {
    j1 = min(j1, p.shift + (min(tile * WG + WG, qrows) - 1u) / p.group + 1u);
    lim = min(lim, p.shift + pos + 1u);
  }
  let j0 = ks.j0;
  let kbase = ks.base;

  var m = NEG;
  var l = 0.0;
  for (var jt = j0; jt < j1; jt += BK) {
    let nk = min(BK, j1 - jt);
    workgroupBarrier(); // the previous tile has been used by everyone
    for (var e = lid; e < nk * d4n; e += WG) {
      let at = kbase + (jt + e / d4n) * p.k_row + e % d4n;
      kt[e] = vec4f(k[at]);
      vt[e] = vec4f(v[at]);
    }
    workgroupBarrier();
    var s: array<f32, MAX_BK>;
    var mt = m;
    for (var j = 0u; j < nk; j++) {
      var acc = vec4f(0.0);
      for (var d = 0u; d < d4n; d++) { acc = fma(qv[d], kt[j * d4n + d], acc); }
      s[j] = select(NEG, acc.x + acc.y + acc.z + acc.w, jt + j < lim);
      mt = max(mt, s[j]);
    }
    let corr = exp2(m - mt);
    l *= corr;
    for (var d = 0u; d < d4n; d++) { o[d] *= corr; }
    for (var j = 0u; j < nk; j++) {
      let pj = select(0.0, exp2(s[j] - mt), jt + j < lim);
      l += pj;
      for (var d = 0u; d < d4n; d++) { o[d] = fma(vec4f(pj), vt[j * d4n + d], o[d]); }
    }
    m = mt;
  }

  if (tile * WG + lid < qrows) {
    if (p.partial != 0u) {
      // A chunk wholly past this row's causal limit leaves m = NEG, l = 0, which the reduction weighs by 0.
      let at = ((seg * p.kv_heads * p.group + head) * p.max_splits + split) * (d4n + 1u);
      out[at] = vec4<O>(vec4f(m, l, 0.0, 0.0));
      for (var d = 0u; d < d4n; d++) { out[at + 1u + d] = vec4<O>(o[d]); }
    } else {
      let inv = 1.0 / l;
      for (var d = 0u; d < d4n; d++) { out[qat + d] = vec4<O>(o[d] * inv); }
    }
  }
}
