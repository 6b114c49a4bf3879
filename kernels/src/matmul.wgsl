// y[m, col0 + n] = Σ_k x[m, k] · w[n, k] (+ b[col0 + n]): the tiled matmul for many rows (prefill).
// A workgroup computes a BM × BN tile of y; x and w tiles of depth BK pass through workgroup memory (w widened to
// f32 once per tile), and each invocation accumulates a TM × TN register block in f32. Its rows are strided by
// BM / TM and its columns by BN / TN, so neighbouring invocations read neighbouring workgroup-memory words.
// M, N (= rows of this chunk) and K need not divide the tiles: loads outside x or w read 0, stores are masked.
// The wrapper prepends the dtype prelude: A, load_b, and W8 / w8(row, group) reading 8 weights of a row; then
// BINDINGS (matmul.ts, one copy for the three linear kernels): the uniform block p (M, N, K, rows, col0, tiles_n,
// tiles, has_bias), x [M, K] (A), w [rows, K] (WV), b [N] (WS_b, read only when p.has_bias), y [M, N] (A), and
// tile_of(wid, nwg, BM, BN): the workgroup's tile.

override BM: u32 = 64u;
override BN: u32 = 64u;
override BK: u32 = 16u; // a multiple of 8 (w is read 8 weights at a time)
override TM: u32 = 4u;  // ≤ MAX_T
override TN: u32 = 4u;  // ≤ MAX_T
override WG: u32 = 256u; // (BM / TM) · (BN / TN)
const MAX_T = 4u;

// One padding word per k row: the tile stores, where neighbouring invocations write neighbouring k, hit distinct banks.
override XSTRIDE: u32 = BM + 1u;
override WSTRIDE: u32 = BN + 1u;
var<workgroup> xs: array<f32, BK * XSTRIDE>; // xs[k · XSTRIDE + m]
var<workgroup> ws: array<f32, BK * WSTRIDE>; // ws[k · WSTRIDE + n]

fn load_tiles(m0: u32, n0: u32, k0: u32, lid: u32) {
  for (var i = lid; i < BM * BK; i += WG) {
    let m = i / BK;
    let k = i % BK;
    var v = 0.0;
    if (m0 + m < p.M && k0 + k < p.K) { v = f32(x[(m0 + m) * p.K + k0 + k]); }
    xs[k * XSTRIDE + m] = v;
  }
  let groups = BK / 8u;
  for (var i = lid; i < BN * groups; i += WG) {
    let n = i / groups;
    let g = k0 / 8u + i % groups;
    var v = W8(vec4f(0.0), vec4f(0.0));
    if (n0 + n < p.rows && g * 8u < p.K) { v = w8(n0 + n, g); }
    let at = (i % groups) * 8u * WSTRIDE + n;
    ws[at] = v.e.x;
    ws[at + WSTRIDE] = v.o.x;
    ws[at + 2u * WSTRIDE] = v.e.y;
    ws[at + 3u * WSTRIDE] = v.o.y;
    ws[at + 4u * WSTRIDE] = v.e.z;
    ws[at + 5u * WSTRIDE] = v.o.z;
    ws[at + 6u * WSTRIDE] = v.e.w;
    ws[at + 7u * WSTRIDE] = v.o.w;
  }
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let at = tile_of(wid, nwg, BM, BN);
  if (at.z == 0u) { return; } // uniform per workgroup: the barriers below stay uniform
  let m0 = at.x;
  let n0 = at.y;
  let tx = lid % (BN / TN);
  let ty = lid / (BN / TN);
  var acc: array<array<f32, MAX_T>, MAX_T>;
  for (var k0 = 0u; k0 < p.K; k0 += BK) {
    load_tiles(m0, n0, k0, lid);
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
