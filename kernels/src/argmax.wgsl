// Greedy decoding: the index of the largest value of each row, x [rows, cols] (f32) -> out [rows] (u32).
// Ties go to the smallest index (torch.argmax on CPU: first occurrence); -0 and +0 compare equal. A NaN ranks
// below every number, -inf included, so it is skipped unless a whole row is NaN (then the row gives index 0).
// Two stages: `block` reduces WG·PER columns of one row per workgroup (grid [nb, rows]) to a (value, index)
// pair in `part`, or straight into `out` when one block covers the row (DIRECT); `finish` reduces a row's nb
// pairs.
// PENALISED is the sampler's greedy path (sampling.ts): row r is one sequence of a batch, whose slot (rows table)
// gives its options (rows whose mode is not greedy are left to sampling.wgsl), its presence bits and where its
// token goes (out[slot]); the repetition penalty is applied on the fly from the presence bits (HF semantics:
// x > 0 → x / penalty, else x · penalty) and the winner's presence bit is set.
// Both entry points name every binding whatever PENALISED is, so plain argmax binds one-word placeholders for the
// rows table, the options and the presence bits.
// Prelude: SAMPLER_HEADER (sampling.ts): the row fields, SlotOptions and the MODE_ constants.
// Bindings: params, x (read), rows (read), options (read), part [rows·nb·2] (value bits, index), out [rows, or
// slots when PENALISED], presence [slots, words] (atomic bits).

override WG: u32 = 256;
override PER: u32 = 16;
override DIRECT: bool = false;
override PENALISED: bool = false;

const NONE = 0xffffffffu;

struct Params { rows: u32, cols: u32, nb: u32, slots: u32, words: u32 }

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> rows: array<i32>;
@group(0) @binding(3) var<storage, read> options: array<SlotOptions>;
@group(0) @binding(4) var<storage, read_write> part: array<u32>;
@group(0) @binding(5) var<storage, read_write> out: array<u32>;
@group(0) @binding(6) var<storage, read_write> presence: array<atomic<u32>>;

var<workgroup> bv: array<f32, WG>;
var<workgroup> bi: array<u32, WG>;

// NaN tested on the bits (a compiler may assume x != x is false).
fn is_nan(a: f32) -> bool {
  return (bitcast<u32>(a) & 0x7fffffffu) > 0x7f800000u;
}

// (a, ia) beats (b, ib): b is empty, or a ranks higher (NaN lowest), or ranks the same with a smaller index.
fn better(a: f32, ia: u32, b: f32, ib: u32) -> bool {
  if (ib == NONE) { return true; }
  if (ia == NONE) { return false; }
  let an = is_nan(a);
  if (an != is_nan(b)) { return !an; }
  if (an) { return ia < ib; }
  return a > b || (a == b && ia < ib);
}

// Tree reduction of the per-invocation bests; the winner is left in (bv[0], bi[0]).
fn reduce(lid: u32, v0: f32, i0: u32) {
  bv[lid] = v0;
  bi[lid] = i0;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s >>= 1u) {
    if (lid < s && better(bv[lid + s], bi[lid + s], bv[lid], bi[lid])) {
      bv[lid] = bv[lid + s];
      bi[lid] = bi[lid + s];
    }
    workgroupBarrier();
  }
}

// PENALISED: the row's slot (where its token goes) and whether the row is greedy; else the row itself.
fn slot_of(row: u32) -> u32 {
  if (!PENALISED) { return row; }
  return min(u32(max(rows[row * ROW_FIELDS + ROW_SLOT], 0)), p.slots - 1u);
}

fn serves(slot: u32) -> bool {
  return !PENALISED || options[slot].mode == MODE_GREEDY;
}

// After reduce: invocation 0 stores the block's winner. Returns the winning index (valid in invocation 0).
fn store_block(lid: u32, row: u32, blk: u32) -> u32 {
  if (lid == 0u) {
    if (DIRECT) {
      out[slot_of(row)] = bi[0];
    } else {
      let at = 2u * (row * p.nb + blk);
      part[at] = bitcast<u32>(bv[0]);
      part[at + 1u] = bi[0];
    }
  }
  return bi[0];
}

fn present(slot: u32, id: u32) -> bool {
  return (atomicLoad(&presence[slot * p.words + (id >> 5u)]) & (1u << (id & 31u))) != 0u;
}

fn mark(slot: u32, id: u32) {
  atomicOr(&presence[slot * p.words + (id >> 5u)], 1u << (id & 31u));
}

@compute @workgroup_size(WG)
fn block(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let row = wid.y;
  if (row >= p.rows) { return; }
  let slot = slot_of(row);
  if (!serves(slot)) { return; }
  var penalty = 1.0;
  if (PENALISED) { penalty = options[slot].penalty; }
  let start = wid.x * WG * PER;
  var v = 0.0;
  var vi = NONE;
  for (var k = 0u; k < PER; k++) {
    let c = start + k * WG + lid;
    if (c >= p.cols) { break; }
    var xc = x[row * p.cols + c];
    if (PENALISED && penalty != 1.0 && present(slot, c)) { xc = select(xc * penalty, xc / penalty, xc > 0.0); }
    if (better(xc, c, v, vi)) { v = xc; vi = c; }
  }
  reduce(lid, v, vi);
  let id = store_block(lid, row, wid.x);
  if (PENALISED && DIRECT && lid == 0u) { mark(slot, id); }
}

@compute @workgroup_size(WG)
fn finish(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let row = wid.x + wid.y * nwg.x;
  if (row >= p.rows) { return; }
  let slot = slot_of(row);
  if (!serves(slot)) { return; }
  var v = 0.0;
  var vi = NONE;
  for (var j = lid; j < p.nb; j += WG) {
    let at = 2u * (row * p.nb + j);
    let pv = bitcast<f32>(part[at]);
    let pi = part[at + 1u];
    if (better(pv, pi, v, vi)) { v = pv; vi = pi; }
  }
  reduce(lid, v, vi);
  if (lid == 0u) {
    out[slot] = bi[0];
    if (PENALISED) { mark(slot, bi[0]); }
  }
}
