// Flash attention for CPU adapters (lavapipe): the work, rows, parameters and bindings of attention.wgsl, without
// workgroup memory. On lavapipe every load is a scalar load per lane (workgroup memory included) and barriers are
// costly, while a subgroup broadcast is a register shuffle. So a workgroup is one subgroup of WG = 8 invocations,
// each owning R rows with their q and output accumulators in registers, and the 8 lanes read each key (and value)
// row together: lane i loads vec4s i, i + 8, …, and bcast8 hands each vec4 to every lane, where it feeds R fused
// multiply-adds. Keys go in blocks of 4 with one online-softmax update per block.
// Code size is compile time there: loops whose bodies load or store per lane (q in, results out, the keys of a
// block) keep run-time trip counts so they stay loops; loops over HD / 4, R and the 8 lanes have compile-time trip
// counts and must be unrolled to keep the private arrays in registers. Mesa unrolls a loop that walks a whole
// array dimension whatever its size, hence [R][HD / 4] arrays: with flat [R · HD / 4] arrays the head-dim-128
// loops stayed loops and the arrays went to memory, about 20× slower. Measured on lavapipe at head dim 128:
// R = 2 runs at 60–75 % of the FMA ceiling; R = 4 spills so much that it is several times slower and takes minutes
// to compile. Loop-local vars are initialised explicitly: here (Dawn + lavapipe) a `var` declared in a loop without
// an initialiser was zeroed only on the first iteration, not each time its declaration runs.
// Needs subgroups of at least 8 lanes.
// Prelude: A (q), KV (k, v), O (out), `enable subgroups;`; then FLASH_HEADER (attention_layout.ts): the uniform block, the
// bindings (params, q, k, v, out) and keys_of, as for attention.wgsl. hd4 (= HD / 4) is the run-time trip
// count of the per-lane load and store loops.

override WG: u32 = 8;         // invocations per workgroup: one subgroup of (at least) 8
override R: u32 = 4;          // rows per invocation, ≤ 4
override HD: u32 = 128;       // head dim, a multiple of 4, ≤ 128

const MAX_R = 4u;
const MAX_D4 = 32u;           // HD / 4 at most
const NEG = -3.0e38;          // a finite −∞: exp2(NEG − m) is 0 for any finite m

/** Lane i's value, for i = 0..7, in every lane. */
fn bcast8(x: vec4f) -> array<vec4f, 8> {
  return array<vec4f, 8>(subgroupBroadcast(x, 0u), subgroupBroadcast(x, 1u), subgroupBroadcast(x, 2u), subgroupBroadcast(x, 3u),
                         subgroupBroadcast(x, 4u), subgroupBroadcast(x, 5u), subgroupBroadcast(x, 6u), subgroupBroadcast(x, 7u));
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32,
        @builtin(subgroup_invocation_id) sid: u32) {
  let flat = wid.x + wid.y * nwg.x;
  let kvh = flat % p.kv_heads;
  let tile = (flat / p.kv_heads) % p.tiles;
  let seg = flat / (p.kv_heads * p.tiles);
  if (seg >= p.segs) { return; } // uniform per workgroup: the broadcasts below stay in uniform control flow
  let ks = keys_of(seg, kvh);
  let d4n = HD / 4u;
  let nch = (d4n + 7u) / 8u;   // vec4s each lane loads per key row
  let lane8 = sid & 7u;
  let qrows = p.seg_len * p.group; // query rows of the segment
  let row0 = tile * WG * R + lid * R;

  var qv: array<array<vec4f, MAX_D4>, MAX_R>;
  var o: array<array<vec4f, MAX_D4>, MAX_R>;
  var lim = vec4u(ks.kv_len);
  for (var r = 0u; r < R; r++) {
    let row = min(row0 + r, qrows - 1u); // rows past the segment redo its last row, unwritten
    let pos = row / p.group;
    let at = (p.q_first + seg * p.seg_len + pos) * p.q_row + (kvh * p.group + row % p.group) * d4n;
    for (var d = 0u; d < p.hd4; d++) {
      let x = vec4f(q[at + d]) * p.scale;
      for (var e = 0u; e < d4n; e++) { qv[r][e] = select(qv[r][e], x, d == e); }
    }
    for (var e = 0u; e < d4n; e++) { o[r][e] = vec4f(0.0); }
    if (p.causal != 0u) { lim[r] = min(ks.kv_len, p.shift + pos + 1u); }
  }

  var j1 = ks.kv_len;
  if (p.causal != 0u) { j1 = min(j1, p.shift + (min(tile * WG * R + WG * R, qrows) - 1u) / p.group + 1u); }
  let j0 = 0u;
  let kbase = ks.base;

  var m = vec4f(NEG);
  var l = vec4f(0.0);
  for (var jb = j0; jb < j1; jb += 4u) {
    let nk = min(4u, j1 - jb);
    var s: array<vec4f, 4>;
    for (var r = 0u; r < R; r++) { s[r] = vec4f(NEG); }
    for (var c = 0u; c < nk; c++) {
      let ka = kbase + (jb + c) * p.k_row;
      var acc = array<vec4f, 4>(); // zeroed explicitly (see above)
      for (var cc = 0u; cc < nch; cc++) {
        let kb = bcast8(vec4f(k[ka + min(cc * 8u + lane8, d4n - 1u)]));
        for (var i = 0u; i < 8u; i++) {
          let d = cc * 8u + i;
          if (d < d4n) {
            for (var r = 0u; r < R; r++) { acc[r] = fma(qv[r][d], kb[i], acc[r]); }
          }
        }
      }
      let here = vec4u(c) == vec4u(0u, 1u, 2u, 3u);
      for (var r = 0u; r < R; r++) { s[r] = select(s[r], vec4f(acc[r].x + acc[r].y + acc[r].z + acc[r].w), here); }
    }
    let js = vec4u(jb, jb + 1u, jb + 2u, jb + 3u);
    var pr: array<vec4f, 4>;
    for (var r = 0u; r < R; r++) {
      let valid = js < vec4u(min(j1, lim[r]));
      let sr = select(vec4f(NEG), s[r], valid);
      let mr = max(m[r], max(max(sr.x, sr.y), max(sr.z, sr.w)));
      let corr = exp2(m[r] - mr);
      pr[r] = select(vec4f(0.0), exp2(sr - mr), valid);
      l[r] = l[r] * corr + pr[r].x + pr[r].y + pr[r].z + pr[r].w;
      m[r] = mr;
      for (var d = 0u; d < d4n; d++) { o[r][d] *= corr; }
    }
    for (var c = 0u; c < nk; c++) {
      let va = kbase + (jb + c) * p.k_row;
      let pick = select(vec4f(0.0), vec4f(1.0), vec4u(c) == vec4u(0u, 1u, 2u, 3u));
      var pc: array<vec4f, 4>;
      for (var r = 0u; r < R; r++) { pc[r] = vec4f(dot(pr[r], pick)); }
      for (var cc = 0u; cc < nch; cc++) {
        let vb = bcast8(vec4f(v[va + min(cc * 8u + lane8, d4n - 1u)]));
        for (var i = 0u; i < 8u; i++) {
          let d = cc * 8u + i;
          if (d < d4n) {
            for (var r = 0u; r < R; r++) { o[r][d] = fma(pc[r], vb[i], o[r][d]); }
          }
        }
      }
    }
  }

  for (var r = 0u; r < R; r++) {
    let row = row0 + r;
    if (row >= qrows) { break; }
    let head = kvh * p.group + row % p.group;
    let at = (p.q_first + seg * p.seg_len + row / p.group) * p.o_row + head * d4n;
    let scale = 1.0 / l[r];
    for (var d = 0u; d < p.hd4; d++) {
      var x = vec4f(0.0);
      for (var e = 0u; e < d4n; e++) { x = select(x, o[r][e], d == e); }
      out[at + d] = vec4<O>(x * scale);
    }
  }
}
