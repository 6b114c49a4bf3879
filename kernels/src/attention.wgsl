// Flash attention with an online softmax (GPUs): causal grouped-query prefill over the KV cache and
// segment-restricted vision attention (decode has its own kernel, attention_decode.wgsl). f32 accumulation; no
// score matrix anywhere.
//
// Rows: the queries of one kv head are numbered (position, head within the group): row ρ is position ρ / group of
// query head kvh·group + ρ % group. A workgroup takes WG consecutive rows of one kv head, one per invocation, with
// the row's scaled q and its output accumulator in registers. It walks its keys in tiles of BK rows of K and V,
// staged in workgroup memory by all invocations together; each invocation then scores the tile's keys against its
// row and folds them into a running max and sum (base 2: the scale carries log2 e) and its accumulator.
//
// A dispatch covers `segs` segments: segment s holds queries at positions q_first + s·seg_len + [0, seg_len) of q
// (rows q_row vec4s apart: a prefill reads q from the fused q|k|v rows) and keys at rows k_first + s·seg_len +
// [0, kv_len) of k and v. With `causal`, position i of a segment sees keys [0, shift + i] only (prefill: shift =
// start). Causality and grouping are uniforms rather than overrides, so prefill and vision share one pipeline per
// head dim. A prefill into cache slot s reads kv heads from kv_head0 = s·kv_heads.
// attention_broadcast.wgsl does the same work without workgroup memory, for CPU adapters.
//
// Prelude: A (q), KV (k, v), O (out = A); then the uniform block p, the bindings (params, q, k, v, out; all vec4)
// and keys_of (a workgroup's keys), from FLASH_HEADER in attention_layout.ts, shared with attention_broadcast.wgsl.
//   out: [positions, heads·HD], rows o_row vec4s apart.

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
  let seg = flat / (p.kv_heads * p.tiles);
  if (seg >= p.segs) { return; } // uniform per workgroup, so the barriers below stay uniform
  let ks = keys_of(seg, kvh);
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
  // The workgroup's keys: all of its segment's, cut at the causal limit of its last row; this row's own limit.
  var j1 = ks.kv_len;
  var lim = ks.kv_len;
  if (p.causal != 0u) {
    j1 = min(j1, p.shift + (min(tile * WG + WG, qrows) - 1u) / p.group + 1u);
    lim = min(lim, p.shift + pos + 1u);
  }
  let j0 = 0u;
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
    let inv = 1.0 / l;
    let oat = (p.q_first + seg * p.seg_len + pos) * p.o_row + head * d4n;
    for (var d = 0u; d < d4n; d++) { out[oat + d] = vec4<O>(o[d] * inv); }
  }
}
