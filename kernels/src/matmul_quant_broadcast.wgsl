// y[m, col0 + n] = Σ_k x[m, k] · w'[n, k] (+ b[col0 + n]) with w' the dequantised block-quantised weights, for
// adapters that run a workgroup as a loop on a CPU thread (lavapipe): the broadcast scheme of
// matmul_broadcast.wgsl (no workgroup memory; x values shared by subgroupBroadcast from lanes 0..7) over packed
// codes. Each invocation owns TN rows of w (output columns n0 + c·WG) and the workgroup's TM rows of x. It reads
// each row's codes 16 bytes at a time (one vector load per lane: q8 16 weights, q4 32; the bf16 kernel's loads
// carry 8), turns 8 codes at a time into f32 (one AND and one conversion each, quant.ts) once for all TM rows of
// x, and multiplies them with x values pre-scaled by the codes' byte positions; per block it applies the scale and
// min once: d·Σ u·x + (m − d·QOFFSET)·Σ x. Weights past K are padding codes; the x values there read as 0, so they
// add nothing. Needs subgroups of at least 8 invocations.
// The wrapper prepends the dtype prelude (A, load_b), the format's reader from quant.ts (QBLOCK, QWORDS, QSTEP,
// qcodes, qscale, qblocks), x_at(m, k) (x, or silu(gate) · up from gate | up halves, linear-common.ts) and QUANT_BINDINGS (matmul_quant.ts): p, x [M, K] (A), w [rows, blocks · QWORDS / 4]
// (WQ), s (scales, u32 words), b [N] (WS_b, read only when p.has_bias), y [M, N] (A).

alias WQ = vec4<u32>;

override WG: u32 = 32u;
override TM: u32 = 8u; // ≤ MAX_TM
override TN: u32 = 4u; // ≤ MAX_TN
const MAX_TM = 8u;
const MAX_TN = 8u;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32,
        @builtin(subgroup_invocation_id) sid: u32) {
  let tile = wid.x + wid.y * nwg.x;
  if (tile >= p.tiles) { return; } // uniform per workgroup: the broadcasts below stay in uniform control flow
  let n0 = (tile % p.tiles_n) * WG * TN + lid;
  let m0 = (tile / p.tiles_n) * TM;
  let blocks = qblocks();
  // Rows of w past the end are clamped rather than skipped: every lane must take part in the broadcasts.
  var wrow: array<u32, MAX_TN>;
  for (var c = 0u; c < TN; c++) { wrow[c] = min(n0 + c * WG, p.rows - 1u); }
  let lane8 = sid & 7u;
  let pos = QPOS[lane8 & 3u]; // the byte position of weight k + lane8 in its code word
  var acc: array<array<f32, MAX_TN>, MAX_TM>;
  for (var bk = 0u; bk < blocks; bk++) {
    // Zeroed by hand: a var declared in a loop body should start at zero in every iteration, but Dawn on lavapipe
    // keeps the previous iteration's value (measured).
    var sq: array<array<f32, MAX_TN>, MAX_TM>; // Σ u·x over the block
    var xl: array<f32, MAX_TM>; // Σ x over the block: this lane's share
    for (var r = 0u; r < TM; r++) {
      xl[r] = 0.0;
      for (var c = 0u; c < TN; c++) { sq[r][c] = 0.0; }
    }
    for (var qd = 0u; qd < QWORDS / 4u; qd++) { // 16 bytes of each row's codes at a time: one vector load per lane
      var v: array<vec4u, MAX_TN>;
      for (var c = 0u; c < TN; c++) { v[c] = w[(wrow[c] * blocks + bk) * (QWORDS / 4u) + qd]; }
      for (var h = 0u; h < 4u; h += QSTEP) { // 8 weights per step
        var wv: array<QW, MAX_TN>;
        for (var c = 0u; c < TN; c++) { wv[c] = qcodes(v[c][h], v[c][h + QSTEP - 1u]); }
        let k = bk * QBLOCK + (qd * 4u + h) / QSTEP * 8u + lane8;
        for (var r = 0u; r < TM; r++) {
          if (m0 + r < p.M) { // uniform: fewer rows than TM in the last tile, or in matvec
            let xv = select(0.0, x_at(m0 + r, min(k, p.K - 1u)), k < p.K);
            xl[r] += xv;
            let xs = xv * pos;
            let x0 = subgroupBroadcast(xs, 0u);
            let x1 = subgroupBroadcast(xs, 1u);
            let x2 = subgroupBroadcast(xs, 2u);
            let x3 = subgroupBroadcast(xs, 3u);
            let x4 = subgroupBroadcast(xs, 4u);
            let x5 = subgroupBroadcast(xs, 5u);
            let x6 = subgroupBroadcast(xs, 6u);
            let x7 = subgroupBroadcast(xs, 7u);
            for (var c = 0u; c < TN; c++) {
              var a = sq[r][c];
              a = fma(wv[c].a.x, x0, a);
              a = fma(wv[c].a.y, x1, a);
              a = fma(wv[c].a.z, x2, a);
              a = fma(wv[c].a.w, x3, a);
              a = fma(wv[c].b.x, x4, a);
              a = fma(wv[c].b.y, x5, a);
              a = fma(wv[c].b.z, x6, a);
              a = fma(wv[c].b.w, x7, a);
              sq[r][c] = a;
            }
          }
        }
      }
    }
    // the block's scale and min: Σ w·x = d·Σ u·x + (m − d·QOFFSET)·Σ x
    var dm: array<vec2f, MAX_TN>;
    for (var c = 0u; c < TN; c++) { dm[c] = qscale(wrow[c], bk); }
    for (var r = 0u; r < TM; r++) {
      if (m0 + r < p.M) {
        let sx = subgroupAdd(select(0.0, xl[r], sid < 8u)); // lanes past 8 (on wider subgroups) hold copies
        for (var c = 0u; c < TN; c++) { acc[r][c] += dm[c].x * sq[r][c] + (dm[c].y - dm[c].x * QOFFSET) * sx; }
      }
    }
  }
  for (var r = 0u; r < TM; r++) {
    let m = m0 + r;
    for (var c = 0u; c < TN; c++) {
      let n = n0 + c * WG;
      if (m < p.M && n < p.rows) {
        var v = acc[r][c];
        if (p.has_bias != 0u) { v += load_b(p.col0 + n); }
        y[m * p.N + p.col0 + n] = A(v);
      }
    }
  }
}
