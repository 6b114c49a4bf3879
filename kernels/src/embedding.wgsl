// Embedding gather from one row chunk of the table: out[s, :] = w[ids[s] − row_start, :] for the ids this chunk
// holds (a table too big for one binding is gathered by one dispatch per chunk). One workgroup per output row, its
// invocations striding over the columns. The dispatch for chunk 0 (FIRST) also fills the rows of ids outside
// [0, vocab) with NaN, so a bad id is loud rather than silently clamped. Ids are read as i32: a u32 id ≥ 2^31
// reads negative, which is out of range too. With `indexed` (a batched decode step), output row s takes the id
// ids[slot_s], slot_s from the rows table.
// Prelude: A, WS_w/load_w; then embedding.ts's header: the row fields (rows.ts), the uniform block p, the bindings
// ids [ids_len] (i32/u32) and rows i32 [rows, ROW_FIELDS] (a one-word stand-in unless indexed), and id_of(). Then
// here: w [chunk_rows, cols] (WS_w), out [rows, cols] (A).

override WG: u32 = 256;
override FIRST: bool = false;
override PAIRS: bool = false;

@group(0) @binding(3) var<storage, read> w: array<WS_w>;
@group(0) @binding(4) var<storage, read_write> out: array<A>;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let s = wid.x + wid.y * nwg.x;
  if (s >= p.rows) { return; }
  let id = id_of(s);
  let local = id - i32(p.row_start);
  let dst = s * p.cols;
  if (local >= 0 && local < i32(p.chunk_rows)) {
    let src = u32(local) * p.cols;
    if (PAIRS) {
      // even width: columns 2k and 2k + 1 together, read as load_w(2m), load_w(2m + 1), a form in which the
      // compiler sees one word of a 16-bit table and reads it once
      let src2 = src / 2u;
      for (var k = lid; 2u * k < p.cols; k += WG) {
        let m = 2u * (src2 + k);
        out[dst + 2u * k] = A(load_w(m));
        out[dst + 2u * k + 1u] = A(load_w(m + 1u));
      }
    } else {
      for (var c = lid; c < p.cols; c += WG) { out[dst + c] = A(load_w(src + c)); }
    }
  } else if (FIRST && (id < 0 || id >= i32(p.vocab))) {
    let nan = A(bitcast<f32>(p.nan_bits));
    for (var c = lid; c < p.cols; c += WG) { out[dst + c] = nan; }
  }
}
