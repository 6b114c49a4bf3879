// y[m, col0 + n] = Σ_k x[m, k] · w[n, k] (+ b[col0 + n]) with no workgroup memory: the variant for adapters that
// run a workgroup as a loop on a CPU thread (lavapipe, SwiftShader), where every per-invocation load is a scalar
// load per lane and barriers are costly, but subgroup broadcasts are register shuffles.
// Each invocation owns TN rows of w (output columns n0 + c·WG) and the workgroup's TM rows of x, and keeps a
// TM × TN register block in f32. K advances 8 weights at a time (one vec4<u32> of packed bf16/f16): the 8 x values
// of a row are loaded by lanes 0..7 of the subgroup, one each, and handed to every lane by subgroupBroadcast, so a
// lane's loads are its own weights plus one x value per row. Needs subgroups of at least 8 invocations.
// Serves both matmul and matvec: rows of x past M (the last tile, or M < TM) are skipped by a uniform branch.
// On lavapipe, at 4096×4096 bf16: ~20–25 GFLOP/s at M = 512 (tiled matmul.wgsl: ~3–6), ~9 GB/s at M = 1.
// The wrapper prepends the dtype prelude: A, load_b, W8 / w8(row, group) reading 8 weights of a row, and x_at(m, k)
// reading x (or silu(gate) · up from gate | up halves: the SwiGLU input of down_proj, linear-common.ts); then
// BINDINGS (matmul.ts, one copy for the three linear kernels): the uniform block p (M, N, K, rows, col0, tiles_n,
// tiles, has_bias), x [M, K] (A), w [rows, K] (WV), b [N] (WS_b, read only when p.has_bias), y [M, N] (A).

override WG: u32 = 8u;
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
  // Rows of w past the end are clamped rather than skipped: every lane must take part in the broadcasts.
  var wrow: array<u32, MAX_TN>;
  for (var c = 0u; c < TN; c++) { wrow[c] = min(n0 + c * WG, p.rows - 1u); }
  let lane8 = sid & 7u;
  var acc: array<array<f32, MAX_TN>, MAX_TM>;
  for (var g = 0u; g < (p.K + 7u) / 8u; g++) {
    var wv: array<W8, MAX_TN>;
    for (var c = 0u; c < TN; c++) { wv[c] = w8(wrow[c], g); }
    let k = g * 8u + lane8;
    for (var r = 0u; r < TM; r++) {
      if (m0 + r < p.M) { // uniform: fewer rows than TM in the last tile, or in matvec
        let xv = select(0.0, x_at(m0 + r, min(k, p.K - 1u)), k < p.K);
        let x0 = subgroupBroadcast(xv, 0u);
        let x1 = subgroupBroadcast(xv, 1u);
        let x2 = subgroupBroadcast(xv, 2u);
        let x3 = subgroupBroadcast(xv, 3u);
        let x4 = subgroupBroadcast(xv, 4u);
        let x5 = subgroupBroadcast(xv, 5u);
        let x6 = subgroupBroadcast(xv, 6u);
        let x7 = subgroupBroadcast(xv, 7u);
        for (var c = 0u; c < TN; c++) {
          var a = acc[r][c];
          a = fma(wv[c].e.x, x0, a);
          a = fma(wv[c].o.x, x1, a);
          a = fma(wv[c].e.y, x2, a);
          a = fma(wv[c].o.y, x3, a);
          a = fma(wv[c].e.z, x4, a);
          a = fma(wv[c].o.z, x5, a);
          a = fma(wv[c].e.w, x6, a);
          a = fma(wv[c].o.w, x7, a);
          acc[r][c] = a;
        }
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
