// y[m, col0 + n] = Σ_k x[m, k] · w'[n, k] (+ b[col0 + n]) for a few rows of x (decode, M ≤ 8) over block-quantised
// weights: the split-K scheme of matvec.wgsl with a block (32 bytes of codes: 32 weights in q8, 64 in q4) as the
// unit. A team of T invocations shares each row of w and owns R rows; a step gives lane t the blocks t, t + T, …,
// t + (U − 1)·T of each row, whose codes (two 16-byte loads per block) and scales are all loaded before the first
// is used: U · R · 32 bytes in flight per lane. Per block, a lane adds Σ u·x for each of its R rows and Σ x once,
// then folds in the block's scale and min: d·Σ u·x + (m − d·QOFFSET)·Σ x (the codes become f32 in registers,
// quant.ts; no f32 copy of w exists). x is read in vec4 pairs through x8z (linear-common.ts; silu(gate) · up where
// x holds gate | up halves, the SwiGLU input of down_proj), which reads 0 past K: the last block of a row, when K is not a multiple of QBLOCK, holds padding codes (q4's dequantise to its min).
// Split-K, team_reduce and store_y as in matvec.wgsl. The shapes (U = 2 blocks: 16 KB in flight per workgroup
// of 128, as the bf16 kernel) are reasoned in ARCHITECTURE.md ("Decode matvec on GPUs"). GPU speed is
// unverified: no GPU has run this kernel; lavapipe checks its results.
// The wrapper prepends the dtype prelude (A, load_b), the format's reader from quant.ts (QBLOCK, QWORDS, QSTEP,
// qcodes, qscale, qblocks), the x reader and store_y (linear-common.ts) and QUANT_BINDINGS (matmul_quant.ts): p,
// x [M, K] (XV), w [rows, blocks · QWORDS / 4] (WQ), s (scales, u32 words), b [N] (WS_b), y (Y).

alias WQ = vec4<u32>;

override WG: u32 = 128u;
override T: u32 = 32u; // invocations per row of w: a power of two dividing WG
override R: u32 = 2u;  // rows of w per team, ≤ MAX_R; U (blocks per lane per step) is a const from the wrapper
const MAX_R = 2u;
const MAX_M = 8u;      // rows of x; the loops stop at p.M
const QV = QWORDS / 4u; // 16-byte loads per block (2 in both formats)

alias Sums = array<array<f32, MAX_R>, MAX_M>;
/** One block of one row: its codes and its (d, m). */
struct Block { v: array<vec4u, QV>, dm: vec2f }

fn load_block(row: u32, blocks: u32, bk: u32) -> Block {
  var b: Block;
  for (var qd = 0u; qd < QV; qd++) { b.v[qd] = w[(row * blocks + bk) * QV + qd]; }
  b.dm = qscale(row, bk);
  return b;
}

/** Adds block bk of the R rows in `blk` times x to acc. */
fn add_block(acc: ptr<function, Sums>, blk: array<Block, MAX_R>, bk: u32) {
  for (var m = 0u; m < MAX_M; m++) {
    if (m >= p.M) { continue; }
    var sx = 0.0;
    var sq = array<f32, MAX_R>(0.0, 0.0); // Σ u·x per row (zeroed by hand, as every per-iteration var here)
    for (var qd = 0u; qd < QV; qd++) {
      for (var h = 0u; h < 4u; h += QSTEP) { // 8 weights per step
        let k = bk * QBLOCK + (qd * 4u + h) / QSTEP * 8u;
        let xv = x8z(m, k);
        sx += dot(xv.a, vec4f(1.0)) + dot(xv.b, vec4f(1.0));
        let xa = xv.a * QPOS; // the codes' byte positions (quant.ts)
        let xb = xv.b * QPOS;
        for (var r = 0u; r < R; r++) {
          let q = qcodes(blk[r].v[qd][h], blk[r].v[qd][h + QSTEP - 1u]);
          sq[r] += dot(q.a, xa) + dot(q.b, xb);
        }
      }
    }
    for (var r = 0u; r < R; r++) {
      let dm = blk[r].dm;
      (*acc)[m][r] += dm.x * sq[r] + (dm.y - dm.x * QOFFSET) * sx;
    }
  }
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
  let blocks = qblocks();
  let span = slice_span(blocks, p.tiles / p.tiles_n, slice, T * U);
  var acc: Sums;
  let steps = (span.y - span.x) / (T * U);
  for (var i = 0u; i < steps; i++) {
    let bk = span.x + i * T * U + lane;
    var blk: array<array<Block, MAX_R>, U>;
    for (var u = 0u; u < U; u++) {
      for (var r = 0u; r < R; r++) { blk[u][r] = load_block(rows[r], blocks, bk + u * T); }
    }
    for (var u = 0u; u < U; u++) { add_block(&acc, blk[u], bk + u * T); }
  }
  for (var bk = span.x + steps * T * U + lane; bk < span.y; bk += T) { // the rest, one block per lane
    var blk: array<Block, MAX_R>;
    for (var r = 0u; r < R; r++) { blk[r] = load_block(rows[r], blocks, bk); }
    add_block(&acc, blk, bk);
  }
  team_reduce(&acc, lid);
  for (var m = 0u; m < MAX_M; m++) {
    if (m >= p.M) { continue; }
    for (var r = 0u; r < R; r++) {
      if (lane == 0u && row0 + r < p.rows) { store_y(m, row0 + r, slice, acc[m][r]); }
    }
  }
}
