// y[m, col0 + n] = Σ_k x[m, k] · w[n, k] (+ b[col0 + n]) for a few rows of x (decode, M ≤ 8): bandwidth-bound,
// every weight is read once. A team of T invocations shares each row of w: lane t reads the 8-weight groups
// t, t + T, … (one vec4<u32> of packed bf16/f16, or two vec4<f32>), so a team's loads are contiguous. Each team
// owns R rows of w; a lane reuses its x values for all R rows and its weights for all M rows of x. The M × R
// partial sums are then added across the team by team_reduce(), from matvec_reduce_subgroup.wgsl (subgroup
// shuffles, T ≤ the subgroup size) or matvec_reduce_shared.wgsl (workgroup memory, one tree for all sums).
// The wrapper prepends the dtype prelude: A, load_b, and W8 / w8(row, group) reading 8 weights of a row; then
// BINDINGS (matmul.ts, one copy for the three linear kernels): the uniform block p (M, N, K, rows, col0, tiles_n,
// tiles, has_bias), x [M, K] (A), w [rows, K] (WV), b [N] (WS_b, read only when p.has_bias), y [M, N] (A).

override WG: u32 = 128u;
override T: u32 = 32u; // invocations per row of w: a power of two dividing WG
override R: u32 = 2u;  // rows of w per team, ≤ MAX_R
const MAX_R = 4u;
const MAX_M = 8u;      // rows of x; the loops stop at p.M

alias Sums = array<array<f32, MAX_R>, MAX_M>;

fn xk(base: u32, k: u32) -> f32 {
  return select(0.0, f32(x[base + min(k, p.K - 1u)]), k < p.K);
}

/** x[m, 8g .. 8g + 8) split like W8: even offsets in e, odd in o; 0 past K. */
fn x8(m: u32, g: u32) -> W8 {
  let base = m * p.K;
  let k = g * 8u;
  return W8(vec4f(xk(base, k), xk(base, k + 2u), xk(base, k + 4u), xk(base, k + 6u)),
            vec4f(xk(base, k + 1u), xk(base, k + 3u), xk(base, k + 5u), xk(base, k + 7u)));
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let tile = wid.x + wid.y * nwg.x;
  if (tile >= p.tiles) { return; } // uniform per workgroup: team_reduce below stays in uniform control flow
  let lane = lid % T;
  let row0 = (tile * (WG / T) + lid / T) * R;
  var rows: array<u32, MAX_R>;
  for (var r = 0u; r < R; r++) { rows[r] = min(row0 + r, p.rows - 1u); }
  let groups = (p.K + 7u) / 8u;
  var acc: Sums;
  for (var i = 0u; i < (groups + T - 1u) / T; i++) { // a uniform trip count; lanes past the end idle
    let g = i * T + lane;
    if (g < groups) {
      var wv: array<W8, MAX_R>;
      for (var r = 0u; r < R; r++) { wv[r] = w8(rows[r], g); }
      for (var m = 0u; m < MAX_M; m++) {
        if (m >= p.M) { continue; }
        let xv = x8(m, g);
        for (var r = 0u; r < R; r++) { acc[m][r] += dot(wv[r].e, xv.e) + dot(wv[r].o, xv.o); }
      }
    }
  }
  team_reduce(&acc, lid);
  for (var m = 0u; m < MAX_M; m++) {
    if (m >= p.M) { continue; }
    for (var r = 0u; r < R; r++) {
      let n = row0 + r;
      if (lane == 0u && n < p.rows) {
        var v = acc[m][r];
        if (p.has_bias != 0u) { v += load_b(p.col0 + n); }
        y[m * p.N + p.col0 + n] = A(v);
      }
    }
  }
}
