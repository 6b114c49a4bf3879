// y[m, col0 + n] = Σ_k x[m, k] · w[n, k] (+ b[col0 + n]) on the GPU's matrix units (tensor cores), through WGSL
// subgroup matrices: each subgroup multiplies SM × SK by SK × SN matrices of TS operands (f16 where the adapter
// offers f16 → f32) into f32 SM × SN results.
// A workgroup computes a BM × BN tile of y with SGM × SGN subgroups, each owning an (RM · SM) × (RN · SN) block of
// it as RM × RN result matrices. The x and w tiles of depth BK are converted to TS and staged in workgroup memory,
// x row-major ([m][k], a left matrix is row-major with stride BK) and w as stored ([n][k], a right matrix — k rows,
// n columns — is then column-major with stride BK), double-buffered: the next k-tile is read into registers before
// the current one is multiplied and stored into the other buffer after it, one barrier per k-tile. Results leave
// through a small per-subgroup scratch matrix, so the bias, the conversion to A and the edge masks are plain code.
// M, N (= rows of this chunk) and K need not divide the tiles: loads outside x or w read 0, stores are masked.
// x is rounded to TS: with f16 operands the kernel assumes |x| ≤ 65504 (the weights are checked at load).
// The matrix builtins are reached through load_left, load_right, mma and store_acc, which the wrapper
// (matmul_subgroup_matrix.ts) defines with the builtins, or for tests on adapters without subgroup matrices with
// scalar code of the same meaning, so the tiling below is checked everywhere.
// The wrapper prepends, in order: the directives; the dtype prelude (A, load_b, W8 / w8(row, group)); BINDINGS
// (matmul.ts): the uniform block p (M, N, K, rows, col0, tiles_n, tiles, has_bias), x [M, K] (A), w [rows, K]
// (WV), b [N] (WS_b, read only when p.has_bias), y [M, N] (A), and tile_of(wid, nwg, BM, BN): the workgroup's
// tile; then the tile constants SM, SN, SK, BM, BN, BK, SGM, SGN, WG (constants, not overrides: Dawn sizes
// subgroup matrices and the workgroup arrays they load from when it creates the shader), TS and the matrix
// functions.

const RM = BM / SGM / SM;
const RN = BN / SGN / SN;
const NSG = SGM * SGN;
const XPER = (BM * BK + WG - 1u) / WG;       // x values per invocation and k-tile
const WPER = (BN * BK / 8u + WG - 1u) / WG;  // 8-weight groups per invocation and k-tile

var<workgroup> xs: array<TS, 2u * BM * BK>;  // xs[buffer][m][k]
var<workgroup> ws: array<TS, 2u * BN * BK>;  // ws[buffer][n][k]
var<workgroup> cs: array<f32, NSG * SM * SN>; // cs[subgroup][m][n]: one result matrix on its way out

/** A k-tile's share of one invocation, in registers between its global load and its store to workgroup memory. */
struct Staged {
  x: array<f32, XPER>,
  w: array<W8, WPER>,
}

fn load_tile(m0: u32, n0: u32, k0: u32, lid: u32) -> Staged {
  var s: Staged;
  for (var i = 0u; i < XPER; i++) {
    let e = lid + i * WG; // BK consecutive invocations read BK consecutive k of one row
    let m = m0 + e / BK;
    let k = k0 + e % BK;
    s.x[i] = 0.0;
    if (e < BM * BK && m < p.M && k < p.K) { s.x[i] = f32(x[m * p.K + k]); }
  }
  for (var i = 0u; i < WPER; i++) {
    let e = lid + i * WG;
    let n = n0 + e / (BK / 8u);
    let g = k0 / 8u + e % (BK / 8u);
    s.w[i] = W8(vec4f(0.0), vec4f(0.0));
    if (e < BN * BK / 8u && n < p.rows && g * 8u < p.K) { s.w[i] = w8(n, g); }
  }
  return s;
}

fn store_tile(s: Staged, buf: u32, lid: u32) {
  for (var i = 0u; i < XPER; i++) {
    let e = lid + i * WG; // = m · BK + k
    if (e < BM * BK) { xs[buf * BM * BK + e] = TS(s.x[i]); }
  }
  for (var i = 0u; i < WPER; i++) {
    let e = lid + i * WG; // = n · BK / 8 + group
    if (e < BN * BK / 8u) {
      let at = buf * BN * BK + e * 8u;
      let v = s.w[i];
      ws[at] = TS(v.e.x);
      ws[at + 1u] = TS(v.o.x);
      ws[at + 2u] = TS(v.e.y);
      ws[at + 3u] = TS(v.o.y);
      ws[at + 4u] = TS(v.e.z);
      ws[at + 5u] = TS(v.o.z);
      ws[at + 6u] = TS(v.e.w);
      ws[at + 7u] = TS(v.o.w);
    }
  }
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32,
        @builtin(subgroup_id) sg: u32, @builtin(subgroup_invocation_id) sid: u32, @builtin(subgroup_size) sgs: u32) {
  let at = tile_of(wid, nwg, BM, BN);
  if (at.z == 0u) { return; } // uniform per workgroup: the barriers below stay uniform
  let m0 = at.x;
  let n0 = at.y;
  // WG is NSG times the adapter's largest subgroup; a driver that runs smaller subgroups makes more of them, and
  // those past NSG only help to load the tiles. Matrix operations stay uniform within each subgroup.
  let computes = sg < NSG;
  let mrow = (sg % SGM) * RM * SM;
  let ncol = (sg / SGM) * RN * SN;
  var acc: array<Acc, RM * RN>; // zero
  let tiles = (p.K + BK - 1u) / BK;
  store_tile(load_tile(m0, n0, 0u, lid), 0u, lid);
  workgroupBarrier();
  for (var t = 0u; t < tiles; t++) {
    let buf = t % 2u;
    let more = t + 1u < tiles;
    var next: Staged;
    if (more) { next = load_tile(m0, n0, (t + 1u) * BK, lid); }
    if (computes) {
      for (var kk = 0u; kk < BK; kk += SK) {
        var left: array<Left, RM>;
        for (var i = 0u; i < RM; i++) { left[i] = load_left(buf * BM * BK + (mrow + i * SM) * BK + kk); }
        for (var j = 0u; j < RN; j++) {
          let right = load_right(buf * BN * BK + (ncol + j * SN) * BK + kk);
          for (var i = 0u; i < RM; i++) { acc[i * RN + j] = mma(left[i], right, acc[i * RN + j]); }
        }
      }
    }
    if (more) { store_tile(next, 1u - buf, lid); }
    workgroupBarrier(); // one barrier: the buffer stored here was last read before the previous barrier
  }
  let own = sg * SM * SN;
  for (var i = 0u; i < RM; i++) {
    for (var j = 0u; j < RN; j++) {
      if (computes) { store_acc(acc[i * RN + j], own); }
      workgroupBarrier(); // the matrix is in cs for every lane of the subgroup
      if (computes) {
        for (var e = sid; e < SM * SN; e += sgs) {
          let m = m0 + mrow + i * SM + e / SN;
          let n = n0 + ncol + j * SN + e % SN;
          if (m < p.M && n < p.rows) {
            var v = cs[own + e];
            if (p.has_bias != 0u) { v += load_b(p.col0 + n); }
            y[m * p.N + p.col0 + n] = A(v);
          }
        }
      }
      workgroupBarrier(); // read before the next matrix overwrites it
    }
  }
}
