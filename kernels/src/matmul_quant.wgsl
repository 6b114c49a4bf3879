// y[m, col0 + n] = Σ_k x[m, k] · w'[n, k] (+ b[col0 + n]) over block-quantised weights, tiled for many rows of x
// (prefill on GPUs). A workgroup computes a BM × BN tile of y; K advances BK = 32 weights at a time. Each step
// loads an x tile and dequantises the w tile into workgroup memory: one invocation per 8 weights of a row reads
// QSTEP code words and its block's scale (and min), and writes 8 f32, so the tile is in f32 only on chip (no
// dequantised copy of w in GPU memory). Each invocation then accumulates a TM × TN register block in f32, its
// rows strided by BM / TM and its columns by BN / TN. M, N (= rows of this chunk) and K need not divide the
// tiles: loads outside x or w read 0, stores are masked. Tiles are numbered wid.x + wid.y · nwg.x (grid.ts).
// The wrapper prepends the dtype prelude (A, load_b), the format's reader from quant.ts (QBLOCK, QWORDS, QSTEP,
// qcodes, qscale, qblocks, qweights8) and QUANT_BINDINGS (matmul_quant.ts): p, x [M, K] (A), w [rows, blocks · QWORDS] (WQ),
// s (scales, u32 words), b [N] (WS_b, read only when p.has_bias), y [M, N] (A).

alias WQ = u32;

override BM: u32 = 64u;
override BN: u32 = 64u;
override TM: u32 = 4u;  // ≤ MAX_T
override TN: u32 = 4u;  // ≤ MAX_T
override WG: u32 = 256u; // (BM / TM) · (BN / TN)
const BK = 32u; // one 32-weight part of a block (QBLOCK is a multiple of 32)
const MAX_T = 4u;

// One padding word per k row: the tile stores, where neighbouring invocations write neighbouring k, hit distinct banks.
override XSTRIDE: u32 = BM + 1u;
override WSTRIDE: u32 = BN + 1u;
var<workgroup> xs: array<f32, BK * XSTRIDE>; // xs[k · XSTRIDE + m]
var<workgroup> ws: array<f32, BK * WSTRIDE>; // ws[k · WSTRIDE + n]

fn load_tiles(m0: u32, n0: u32, k0: u32, lid: u32, blocks: u32) {
  for (var i = lid; i < BM * BK; i += WG) {
    let m = i / BK;
    let k = i % BK;
    var v = 0.0;
    if (m0 + m < p.M && k0 + k < p.K) { v = f32(x[(m0 + m) * p.K + k0 + k]); }
    xs[k * XSTRIDE + m] = v;
  }
  let bk = k0 / QBLOCK;
  for (var i = lid; i < BN * (BK / 8u); i += WG) { // 8 weights of one row each
    let n = i / (BK / 8u);
    let t = i % (BK / 8u);
    var q = QW(vec4f(0.0), vec4f(0.0));
    if (n0 + n < p.rows) { q = qweights8(n0 + n, blocks, bk, (k0 % QBLOCK) / 8u + t); }
    // weights past K are padding codes: their x is 0, so they need no mask here
    let at = t * 8u * WSTRIDE + n;
    ws[at] = q.a.x;
    ws[at + WSTRIDE] = q.a.y;
    ws[at + 2u * WSTRIDE] = q.a.z;
    ws[at + 3u * WSTRIDE] = q.a.w;
    ws[at + 4u * WSTRIDE] = q.b.x;
    ws[at + 5u * WSTRIDE] = q.b.y;
    ws[at + 6u * WSTRIDE] = q.b.z;
    ws[at + 7u * WSTRIDE] = q.b.w;
  }
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let tile = wid.x + wid.y * nwg.x;
  if (tile >= p.tiles) { return; } // uniform per workgroup: the barriers below stay uniform
  let m0 = (tile / p.tiles_n) * BM;
  let n0 = (tile % p.tiles_n) * BN;
  let tx = lid % (BN / TN);
  let ty = lid / (BN / TN);
  let blocks = qblocks();
  var acc: array<array<f32, MAX_T>, MAX_T>;
  for (var k0 = 0u; k0 < p.K; k0 += BK) {
    load_tiles(m0, n0, k0, lid, blocks);
    workgroupBarrier();
    for (var kk = 0u; kk < BK; kk++) {
      var a: array<f32, MAX_T>;
      var c: array<f32, MAX_T>;
      for (var i = 0u; i < TM; i++) { a[i] = xs[kk * XSTRIDE + ty + i * (BM / TM)]; }
      for (var j = 0u; j < TN; j++) { c[j] = ws[kk * WSTRIDE + tx + j * (BN / TN)]; }
      for (var i = 0u; i < TM; i++) {
        for (var j = 0u; j < TN; j++) { acc[i][j] = fma(a[i], c[j], acc[i][j]); }
      }
    }
    workgroupBarrier(); // every tile read before the next load overwrites it
  }
  for (var i = 0u; i < TM; i++) {
    let m = m0 + ty + i * (BM / TM);
    for (var j = 0u; j < TN; j++) {
      let n = n0 + tx + j * (BN / TN);
      if (m < p.M && n < p.rows) {
        var v = acc[i][j];
        if (p.has_bias != 0u) { v += load_b(p.col0 + n); }
        y[m * p.N + p.col0 + n] = A(v);
      }
    }
  }
}
