// y[m, col0 + n] = Σ_k x[m, k] · w[n, k] (+ b[col0 + n]): the large-tile matmul for prefill and the vision tower on
// GPUs without usable subgroup matrices. A workgroup computes a BM × BN tile of y (128 × 128 or 128 × 64) and each
// invocation an 8 × 8 block of it in registers, so every value read from workgroup memory feeds 8 FMAs (the 64 × 64
// tiles of matmul.wgsl feed 4). Workgroup memory holds the tiles k-major as vec4 along m and n: an invocation reads
// its 8 x values and 8 w values of one k as 4 vec4 loads; its rows are 4ty..4ty+3 and BM/2 + 4ty..+3, its columns
// 4tx..4tx+3 and BN/2 + 4tx..+3, so the invocations of a subgroup read neighbouring vec4s.
// Double buffering: the next k-tile is read from memory into registers before the current one is multiplied and
// stored into the other buffer after it, so global loads overlap the FMAs and one barrier per k-tile suffices.
// M, N (= rows of this chunk) and K need not divide the tiles: loads outside x or w read 0, stores are masked.
// The wrapper prepends the dtype prelude: A, load_b, and W8 / w8(row, group) reading 8 weights of a row; then
// BINDINGS (matmul.ts): the uniform block p (M, N, K, rows, col0, tiles_n, tiles, has_bias), x [M, K] (A),
// w [rows, K] (WV), b [N] (WS_b, read only when p.has_bias), y [M, N] (A), and tile_of(wid, nwg, BM, BN): the
// workgroup's tile.

override BM: u32 = 128u; // a multiple of 8
override BN: u32 = 128u; // a multiple of 8
override WG: u32 = 256u; // (BM / 8) · (BN / 8)
const BK = 8u;           // one 8-weight group of each row of w per k-tile
const XR = 8u;           // x values an invocation carries between tiles: BM · BK / WG, at most 8 (WG ≥ BM)

var<workgroup> xs: array<vec4f, 2u * BK * BM / 4u>; // xs[buffer][k][m / 4]
var<workgroup> ws: array<vec4f, 2u * BK * BN / 4u>; // ws[buffer][k][n / 4]

/** A k-tile's share of one invocation, in registers between its global load and its store to workgroup memory. */
struct Staged {
  x: array<f32, XR>,
  w: W8,
}

fn load_tile(m0: u32, n0: u32, k0: u32, lid: u32) -> Staged {
  var s: Staged;
  for (var i = 0u; i < XR; i++) {
    let e = lid + i * WG; // 8 consecutive invocations read 8 consecutive k of one row
    let m = m0 + e / BK;
    let k = k0 + e % BK;
    s.x[i] = 0.0;
    if (e < BM * BK && m < p.M && k < p.K) { s.x[i] = f32(x[m * p.K + k]); }
  }
  s.w = W8(vec4f(0.0), vec4f(0.0));
  if (lid < BN && n0 + lid < p.rows && k0 < p.K) { s.w = w8(n0 + lid, k0 / 8u); }
  return s;
}

fn store_tile(s: Staged, buf: u32, lid: u32) {
  for (var i = 0u; i < XR; i++) {
    let e = lid + i * WG;
    if (e < BM * BK) {
      let m = e / BK;
      xs[(buf * BK + e % BK) * (BM / 4u) + m / 4u][m % 4u] = s.x[i];
    }
  }
  if (lid < BN) {
    let at = buf * BK * (BN / 4u) + lid / 4u;
    let c = lid % 4u;
    let row = BN / 4u;
    ws[at][c] = s.w.e.x;
    ws[at + row][c] = s.w.o.x;
    ws[at + 2u * row][c] = s.w.e.y;
    ws[at + 3u * row][c] = s.w.o.y;
    ws[at + 4u * row][c] = s.w.e.z;
    ws[at + 5u * row][c] = s.w.o.z;
    ws[at + 6u * row][c] = s.w.e.w;
    ws[at + 7u * row][c] = s.w.o.w;
  }
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let at = tile_of(wid, nwg, BM, BN);
  if (at.z == 0u) { return; } // uniform per workgroup: the barriers below stay uniform
  let m0 = at.x;
  let n0 = at.y;
  let tx = lid % (BN / 8u);
  let ty = lid / (BN / 8u);
  // acc[r][h]: row r of the block (4ty + r, then BM/2 + 4ty + r - 4), columns 4tx.. (h = 0) and BN/2 + 4tx.. (h = 1)
  var acc: array<array<vec4f, 2>, 8>;
  let tiles = (p.K + BK - 1u) / BK;
  store_tile(load_tile(m0, n0, 0u, lid), 0u, lid);
  workgroupBarrier();
  for (var t = 0u; t < tiles; t++) {
    let buf = t % 2u;
    let more = t + 1u < tiles;
    var next: Staged;
    if (more) { next = load_tile(m0, n0, (t + 1u) * BK, lid); }
    for (var k = 0u; k < BK; k++) {
      let xrow = (buf * BK + k) * (BM / 4u);
      let wrow = (buf * BK + k) * (BN / 4u);
      let a0 = xs[xrow + ty];
      let a1 = xs[xrow + BM / 8u + ty];
      let c0 = ws[wrow + tx];
      let c1 = ws[wrow + BN / 8u + tx];
      let a = array<f32, 8>(a0.x, a0.y, a0.z, a0.w, a1.x, a1.y, a1.z, a1.w);
      for (var r = 0u; r < 8u; r++) {
        acc[r][0] = fma(vec4f(a[r]), c0, acc[r][0]);
        acc[r][1] = fma(vec4f(a[r]), c1, acc[r][1]);
      }
    }
    if (more) { store_tile(next, 1u - buf, lid); }
    workgroupBarrier(); // one barrier: the buffer stored here was last read before the previous barrier
  }
  for (var r = 0u; r < 8u; r++) {
    let m = m0 + (r / 4u) * (BM / 2u) + 4u * ty + r % 4u;
    if (m >= p.M) { continue; }
    for (var j = 0u; j < 8u; j++) {
      let n = n0 + (j / 4u) * (BN / 2u) + 4u * tx + j % 4u;
      if (n < p.rows) {
        var v = acc[r][j / 4u][j % 4u];
        if (p.has_bias != 0u) { v += load_b(p.col0 + n); }
        y[m * p.N + p.col0 + n] = A(v);
      }
    }
  }
}
