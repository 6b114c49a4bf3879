// Flash attention for prefill and the vision tower on GPUs: the work, rows and parameters of attention.wgsl (read
// its header), with lanes over the head dim. A team of T lanes (within one subgroup) owns R consecutive rows; lane
// l holds vec4s l, l + T, … of each row's scaled q and output accumulator, at most 4 + 4 vec4 per row, so nothing
// spills where attention.wgsl keeps 2 · 128 floats per invocation. A workgroup takes (WG / T) · R rows of one kv
// head and walks its keys in tiles of BK rows of K and V staged in workgroup memory by all invocations; for each
// key a lane reads only its vec4s of the key and value rows and uses each for its R rows. The team's partial dot
// products are added with log2(T) subgroup shuffles. Scores, running max and sum are per row, in base 2 (the
// scale carries log2 e). Prefill and segments.
// Prelude: A (q), KV (k, v), O (out = A), `enable subgroups;`; then FLASH_HEADER (attention_layout.ts): the
// uniform block p, the bindings q, k, v, out and keys_of(), which places a prefill's keys in its cache slot
// (kv_head0).

override WG: u32 = 256;       // invocations per workgroup
override T: u32 = 8;          // lanes per row: a power of two, ≤ the smallest subgroup, ≥ HD / 16
override R: u32 = 2;          // rows per team, ≤ MAX_R
override BK: u32 = 16;        // keys per tile, ≤ MAX_BK
override HD: u32 = 128;       // head dim, a multiple of 4, ≤ 128

const MAX_R = 4u;
const MAX_DL = 4u;            // vec4s of a row per lane: HD / 4 / T at most
const MAX_BK = 32u;
const NEG = -3.0e38;          // a finite −∞: exp2(NEG − m) is 0 for any finite m

var<workgroup> kt: array<vec4f, BK * HD / 4u>;
var<workgroup> vt: array<vec4f, BK * HD / 4u>;

/** The sum over the T lanes of a team, in every lane of it. */
fn team_sum(x: f32) -> f32 {
  var s = x;
  for (var o = T / 2u; o > 0u; o >>= 1u) { s += subgroupShuffleXor(s, o); }
  return s;
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let flat = wid.x + wid.y * nwg.x;
  let kvh = flat % p.kv_heads;
  let tile = (flat / p.kv_heads) % p.tiles;
  let seg = flat / (p.kv_heads * p.tiles);
  if (seg >= p.segs) { return; } // uniform per workgroup: barriers and shuffles below stay uniform
  let d4n = HD / 4u;
  let lane = lid % T;
  let qrows = p.seg_len * p.group; // query rows of the segment
  let per_tile = (WG / T) * R;
  let row0 = tile * per_tile + (lid / T) * R;

  var qv: array<array<vec4f, MAX_DL>, MAX_R>;
  var o: array<array<vec4f, MAX_DL>, MAX_R>;
  var lim: array<u32, MAX_R>;
  var qat: array<u32, MAX_R>;
  for (var r = 0u; r < R; r++) {
    let row = min(row0 + r, qrows - 1u); // rows past the segment redo its last row, unwritten
    let pos = row / p.group;
    let head = kvh * p.group + row % p.group;
    qat[r] = (p.q_first + seg * p.seg_len + pos) * p.q_row + head * d4n;
    lim[r] = select(p.kv_len, min(p.kv_len, p.shift + pos + 1u), p.causal != 0u);
    for (var i = 0u; i < MAX_DL; i++) {
      let d = lane + i * T;
      qv[r][i] = select(vec4f(0.0), vec4f(q[qat[r] + min(d, d4n - 1u)]) * p.scale, d < d4n);
      o[r][i] = vec4f(0.0);
    }
  }
  // The workgroup's keys: all of its segment's (one split), up to the causal limit of its last row.
  let ks = keys_of(seg, kvh);
  var kend = ks.kv_len;
  if (p.causal != 0u) { kend = min(kend, p.shift + (min(tile * per_tile + per_tile, qrows) - 1u) / p.group + 1u); }
  let kbase = ks.base;

  var m = array<f32, MAX_R>(NEG, NEG, NEG, NEG);
  var l = array<f32, MAX_R>(0.0, 0.0, 0.0, 0.0);
  // Loops over keys run to BK (a pipeline constant), so the score array can live in registers; keys past the tile's
  // nk score NEG (they lie past every row's limit) and weigh 0.
  var s: array<array<f32, MAX_BK>, MAX_R>;
  for (var jt = 0u; jt < kend; jt += BK) {
    let nk = min(BK, kend - jt);
    workgroupBarrier(); // the previous tile has been used by everyone
    for (var e = lid; e < nk * d4n; e += WG) {
      let at = kbase + (jt + e / d4n) * p.k_row + e % d4n;
      kt[e] = vec4f(k[at]);
      vt[e] = vec4f(v[at]);
    }
    workgroupBarrier();
    for (var j = 0u; j < BK; j++) {
      var part = array<f32, MAX_R>(0.0, 0.0, 0.0, 0.0);
      for (var i = 0u; i < MAX_DL; i++) {
        let kv = kt[j * d4n + min(lane + i * T, d4n - 1u)]; // q is 0 past the head dim
        for (var r = 0u; r < R; r++) { part[r] += dot(qv[r][i], kv); }
      }
      for (var r = 0u; r < R; r++) { s[r][j] = select(NEG, team_sum(part[r]), jt + j < lim[r]); }
    }
    for (var r = 0u; r < R; r++) {
      var mt = m[r];
      for (var j = 0u; j < BK; j++) { mt = max(mt, s[r][j]); }
      let corr = exp2(m[r] - mt);
      l[r] *= corr;
      for (var i = 0u; i < MAX_DL; i++) { o[r][i] *= corr; }
      m[r] = mt;
    }
    for (var j = 0u; j < BK; j++) {
      var pj = array<f32, MAX_R>(0.0, 0.0, 0.0, 0.0);
      for (var r = 0u; r < R; r++) {
        pj[r] = select(0.0, exp2(s[r][j] - m[r]), jt + j < lim[r]);
        l[r] += pj[r];
      }
      for (var i = 0u; i < MAX_DL; i++) {
        let vv = vt[j * d4n + min(lane + i * T, d4n - 1u)];
        for (var r = 0u; r < R; r++) { o[r][i] = fma(vec4f(pj[r]), vv, o[r][i]); }
      }
    }
  }

  for (var r = 0u; r < R; r++) {
    let row = row0 + r;
    if (row >= qrows) { continue; }
    let inv = 1.0 / l[r];
    let oat = (p.q_first + seg * p.seg_len + row / p.group) * p.o_row + (kvh * p.group + row % p.group) * d4n;
    for (var i = 0u; i < MAX_DL; i++) {
      let d = lane + i * T;
      if (d < d4n) { out[oat + d] = vec4<O>(o[r][i] * inv); }
    }
  }
}
