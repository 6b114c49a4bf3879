// Embedding gather from one row chunk of a block-quantised table (quant.ts): out[s, :] = w'[ids[s] − row_start, :]
// for the ids this chunk holds, dequantised on the way (one row read per token: decode reads 1/V of the table).
// One workgroup per output row, its invocations striding over the row's 8-weight steps. As embedding.wgsl, the
// dispatch for chunk 0 (FIRST) fills the rows of ids outside [0, vocab) with NaN.
// The wrapper prepends the activation prelude (A), the format's reader from quant.ts (QBLOCK, QWORDS, QSTEP,
// qcodes, qscale, qblocks, qweights8) and embedding.ts's header (the uniform block p, the bindings ids and rows,
// id_of(): as embedding.wgsl, a batched decode step's row takes the id of its slot). Bindings here: w (codes,
// u32), s (scales, u32), out [rows, K] (A).

override WG: u32 = 256;
override FIRST: bool = false;

@group(0) @binding(3) var<storage, read> w: array<u32>;
@group(0) @binding(4) var<storage, read> s: array<u32>;
@group(0) @binding(5) var<storage, read_write> out: array<A>;

fn put(at: u32, k: u32, v: f32) {
  if (k < p.K) { out[at + k] = A(v); } // the last block's padding has no column
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let row = wid.x + wid.y * nwg.x;
  if (row >= p.rows) { return; }
  let id = id_of(row);
  let local = id - i32(p.row_start);
  let dst = row * p.K;
  if (local >= 0 && local < i32(p.chunk_rows)) {
    let blocks = qblocks();
    for (var i = lid; i < blocks * (QBLOCK / 8u); i += WG) {
      let bk = i / (QBLOCK / 8u);
      let t = i % (QBLOCK / 8u);
      let q = qweights8(u32(local), blocks, bk, t);
      let k = bk * QBLOCK + t * 8u;
      for (var j = 0u; j < 4u; j++) {
        put(dst, k + j, q.a[j]);
        put(dst, k + 4u + j, q.b[j]);
      }
    }
  } else if (FIRST && (id < 0 || id >= i32(p.vocab))) {
    let nan = A(bitcast<f32>(p.nan_bits));
    for (var c = lid; c < p.K; c += WG) { out[dst + c] = nan; }
  }
}
