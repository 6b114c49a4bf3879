// y[m, col0 + n] = Σ_k x[m, k] · w[n, k] (+ b[col0 + n]) for a few rows of x (decode, M ≤ 8): bandwidth-bound,
// every weight is read once. A team of T invocations shares each row of w; it owns R rows (R = 1 or 2). A step
// of the K loop gives lane t the 8-weight groups t, t + T, …, t + (U − 1)·T of each row (one 16-byte load each:
// a vec4<u32> of packed bf16/f16, or two vec4<f32>), all U · R loads issued before the first is used, so every
// lane keeps U · R · 16 bytes in flight (a team's loads stay contiguous). Steps over whole T · U groups run
// without bounds checks; the last few groups of a slice go one per lane. x is read 8 at a time in two vec4 loads
// (x8, linear-common.ts; silu(gate) · up where x holds gate | up halves, the SwiGLU input of down_proj), once per
// group for all R rows; the weights are reused for all M rows of x.
// Split-K: the workgroups of one row tile split K into p.tiles / p.tiles_n slices of whole steps; with more than
// one slice each writes f32 partial sums to y = part [slices, M, N] and matvec_splitk_sum.wgsl adds them (and the
// bias) in a second pass, without atomics. The shapes (T = 32, U = 4, R and the slices from matvecPlan) are
// reasoned for NVIDIA/AMD GPUs in ARCHITECTURE.md ("Decode matvec on GPUs"): 16 KB in flight per workgroup of 128,
// ~64 KB per SM on an H100. GPU speed is unverified: no GPU has run this kernel; lavapipe checks its results.
// The M × R partial sums of a lane are added across the team by team_reduce(), from matvec_reduce_subgroup.wgsl
// (subgroup shuffles, T ≤ the subgroup size) or matvec_reduce_shared.wgsl (workgroup memory, one tree for all).
// The wrapper prepends the dtype prelude (A, load_b), W8 / w8(row, group) reading 8 weights of a row, the x reader
// and store_y (linear-common.ts), then BINDINGS (matmul.ts): the uniform block p (M, N, K, rows, col0, tiles_n,
// tiles, has_bias), x [M, K] (XV), w [rows, K] (WV), b [N] (WS_b), y [M, N] or [slices, M, N] (Y).

override WG: u32 = 128u;
override T: u32 = 32u; // invocations per row of w: a power of two dividing WG
override R: u32 = 2u;  // rows of w per team, ≤ MAX_R; U (groups per lane per step) is a const from the wrapper
const MAX_R = 2u;
const MAX_M = 8u;      // rows of x; the loops stop at p.M

alias Sums = array<array<f32, MAX_R>, MAX_M>;

/** The 8 products of a weight group and 8 x values (x in k order, the group as W8's even/odd halves). */
fn dot8(w: W8, xv: X8) -> f32 {
  return dot(w.e, vec4f(xv.a.xz, xv.b.xz)) + dot(w.o, vec4f(xv.a.yw, xv.b.yw));
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let tile = wid.x + wid.y * nwg.x;
  if (tile >= p.tiles) { return; } // uniform per workgroup: team_reduce below stays in uniform control flow
  let lane = lid % T;
  let row0 = ((tile % p.tiles_n) * (WG / T) + lid / T) * R;
  var rows: array<u32, MAX_R>;
  for (var r = 0u; r < MAX_R; r++) { rows[r] = min(row0 + min(r, R - 1u), p.rows - 1u); }
  let slice = tile / p.tiles_n;
  let groups = (p.K + 7u) / 8u;
  let span = slice_span(groups, p.tiles / p.tiles_n, slice, T * U);
  var acc: Sums;
  let steps = (span.y - span.x) / (T * U);
  for (var i = 0u; i < steps; i++) {
    let g = span.x + i * T * U + lane;
    var wv: array<array<W8, U>, MAX_R>;
    for (var r = 0u; r < R; r++) {
      for (var u = 0u; u < U; u++) { wv[r][u] = w8(rows[r], g + u * T); }
    }
    for (var m = 0u; m < MAX_M; m++) {
      if (m >= p.M) { continue; }
      for (var u = 0u; u < U; u++) {
        let xv = x8(m, (g + u * T) * 8u);
        for (var r = 0u; r < R; r++) { acc[m][r] += dot8(wv[r][u], xv); }
      }
    }
  }
  for (var g = span.x + steps * T * U + lane; g < span.y; g += T) { // the last < T · U groups, one per lane
    var wv: array<W8, MAX_R>;
    for (var r = 0u; r < R; r++) { wv[r] = w8(rows[r], g); }
    for (var m = 0u; m < MAX_M; m++) {
      if (m >= p.M) { continue; }
      let xv = x8(m, g * 8u);
      for (var r = 0u; r < R; r++) { acc[m][r] += dot8(wv[r], xv); }
    }
  }
  team_reduce(&acc, lid);
  for (var m = 0u; m < MAX_M; m++) {
    if (m >= p.M) { continue; }
    for (var r = 0u; r < R; r++) {
      if (lane == 0u && row0 + r < p.rows) { store_y(m, row0 + r, slice, acc[m][r]); }
    }
  }
}
