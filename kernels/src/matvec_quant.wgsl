// y[m, col0 + n] = Σ_k x[m, k] · w'[n, k] (+ b[col0 + n]) for a few rows of x (decode, M ≤ 8) over block-quantised
// weights: the split-K scheme of matvec.wgsl. A team of T invocations shares each row of w; lane t takes the blocks
// t, t + T, …, reading a block's codes in 16-byte loads (q4: one vec4<u32> per 32 weights, q8: two) and its scale
// (and min) in one word, so a team's loads are contiguous. Per block, a lane adds Σ u·x for each of its R rows and
// Σ x once, then folds in the block's scale and min: d·Σ u·x + (m − d·QOFFSET)·Σ x (the codes become f32 in
// registers, quant.ts; no f32 copy of w exists). Weights past K are padding codes; x reads as 0 there. The M × R partial sums are added
// across the team by team_reduce(), from matvec_reduce_subgroup.wgsl or matvec_reduce_shared.wgsl.
// The wrapper prepends the dtype prelude (A, load_b), the format's reader from quant.ts (QBLOCK, QWORDS, QSTEP,
// qcodes, qscale, qblocks) and QUANT_BINDINGS (matmul_quant.ts): p, x [M, K] (A), w [rows, blocks · QWORDS / 4]
// (WQ), s (scales, u32 words), b [N] (WS_b, read only when p.has_bias), y [M, N] (A).

alias WQ = vec4<u32>;

override WG: u32 = 128u;
override T: u32 = 32u; // invocations per row of w: a power of two dividing WG
override R: u32 = 2u;  // rows of w per team, ≤ MAX_R
const MAX_R = 4u;
const MAX_M = 8u;      // rows of x; the loops stop at p.M

alias Sums = array<array<f32, MAX_R>, MAX_M>;

fn xk(base: u32, k: u32) -> f32 {
  return select(0.0, f32(x[base + min(k, p.K - 1u)]), k < p.K);
}

/** x[m, k .. k + 8) as two vec4 (k..k+3, k+4..k+7); 0 past K. */
fn x8(m: u32, k: u32) -> QW {
  let base = m * p.K;
  return QW(vec4f(xk(base, k), xk(base, k + 1u), xk(base, k + 2u), xk(base, k + 3u)),
            vec4f(xk(base, k + 4u), xk(base, k + 5u), xk(base, k + 6u), xk(base, k + 7u)));
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let tile = wid.x + wid.y * nwg.x;
  if (tile >= p.tiles) { return; } // uniform per workgroup: team_reduce below stays in uniform control flow
  let lane = lid % T;
  let row0 = (tile * (WG / T) + lid / T) * R;
  var rows: array<u32, MAX_R>;
  for (var r = 0u; r < R; r++) { rows[r] = min(row0 + r, p.rows - 1u); }
  let blocks = qblocks();
  var acc: Sums;
  for (var i = 0u; i < (blocks + T - 1u) / T; i++) { // a uniform trip count; lanes past the end idle
    let bk = i * T + lane;
    if (bk >= blocks) { continue; }
    // Zeroed by hand: a var declared in a loop body should start at zero in every iteration, but Dawn on lavapipe
    // keeps the previous iteration's value (measured).
    var sq: Sums; // Σ u·x of this block, per row of x and of w
    var sx: array<f32, MAX_M>;
    for (var m = 0u; m < MAX_M; m++) {
      sx[m] = 0.0;
      for (var r = 0u; r < R; r++) { sq[m][r] = 0.0; }
    }
    for (var qd = 0u; qd < QWORDS / 4u; qd++) { // 16 bytes of codes at a time
      var v: array<vec4u, MAX_R>;
      for (var r = 0u; r < R; r++) { v[r] = w[(rows[r] * blocks + bk) * (QWORDS / 4u) + qd]; }
      for (var h = 0u; h < 4u; h += QSTEP) { // 8 weights per step
        let k = bk * QBLOCK + (qd * 4u + h) / QSTEP * 8u;
        for (var m = 0u; m < MAX_M; m++) {
          if (m >= p.M) { continue; }
          let xv = x8(m, k);
          sx[m] += dot(xv.a, vec4f(1.0)) + dot(xv.b, vec4f(1.0));
          let xa = xv.a * QPOS; // the codes' byte positions (quant.ts)
          let xb = xv.b * QPOS;
          for (var r = 0u; r < R; r++) {
            let q = qcodes(v[r][h], v[r][h + QSTEP - 1u]);
            sq[m][r] += dot(q.a, xa) + dot(q.b, xb);
          }
        }
      }
    }
    for (var r = 0u; r < R; r++) {
      let dm = qscale(rows[r], bk);
      for (var m = 0u; m < MAX_M; m++) { acc[m][r] += dm.x * sq[m][r] + (dm.y - dm.x * QOFFSET) * sx[m]; }
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
