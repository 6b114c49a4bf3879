// One token per row of logits [M, n] (f32), as HF transformers' logits processors: repetition penalty →
// temperature → top-k → top-p → softmax → draw, with the uniform draw u = philox2x32-10(counter (step, 0), key
// seed) >> 8 · 2^-24. Row r is one sequence of a batch: its slot (rows table) gives its options, its presence bits
// and where its token goes (out[slot]); its step is the draw's counter. Rows are independent: each has its own
// scores, block statistics and select state, and its result does not depend on the other rows.
//
// Entry points, in the order sampling.ts records them (all share one binding scheme; grids are [blocks or 1, M],
// row r = workgroup_id.y; a row whose mode the entry point does not serve returns at once):
//   init       (top)        clears the row's select state and histogram.
//   scan       (full, top)  s = processed logit → scores; with top-k off, per-block (max, Σexp(s − max)) → stats;
//                           for top, a histogram of the top 11 bits of each score's order key (the first radix digit).
//   pick_digit, refine (top)  radix select of the top `want` tokens by the composite key (order key of s, ~index):
//                           64 bits, so ties go to the smaller index and every key is distinct. pick_digit finds the
//                           histogram bin holding the want-th largest, refine counts the next digit inside that bin;
//                           both stop (done) once the tokens at or above the bin fit the row's candidate buffer (cap).
//   gather     (top)        copies every token at or above the boundary (≤ cap of them) into the candidates.
//   draw_top   (top)        bitonic-sorts the candidates, keeps the top `want` in order, applies top-p (normaliser:
//                           the top-k mass with top-k on, else Σexp over all n from stats: exact), draws.
//   draw_full  (full)       no top-k/top-p: inverse CDF over all n tokens in index order (blocks, then chunks of
//                           PER, then tokens).
// Both draws write out[slot] and set the token's presence bit. (Greedy rows go through argmax.wgsl's penalised path.)
// Numerics: scores and exponentials in f32, sums accumulated in f32; logits must be finite or -inf with at
// least one finite. The pick falls back to the last token with nonzero weight if rounding leaves the
// cumulative sum short of the draw.
// Prelude: SAMPLER_HEADER (sampling.ts): the row fields, SlotOptions and the MODE_ constants.
// Bindings: params, logits [M, n] (read), rows [M, ROW_FIELDS] (read), options [slots] SlotOptions (read),
// presence [slots, words] bits, scores [M, n] f32, stats [M, 2·nb] f32, ctl [M, ctl_stride] (u32: state words,
// histogram, candidates), out [slots] u32.

override WG: u32 = 256;
override MAX_CAP: u32 = 2048; // the largest candidate buffer of any row (workgroup arrays are sized by it)
override PER: u32 = 8u;       // elements per invocation; a block is WG·PER consecutive tokens

const HBINS = 2048u;     // 11-bit digits
const FLT_MAX = 3.4028234663852886e38;
const NONE = 0xffffffffu;
// ctl layout, per row
const S_DONE = 0u;
const S_GREATER = 1u;    // tokens known to be above the boundary bin
const S_PREFIX = 2u;     // 2 words: composite bits fixed so far (hi = order key, lo = ~index)
const S_MASK = 4u;       // 2 words: which bits are fixed
const S_COUNT = 6u;      // candidates gathered
const HIST_AT = 16u;
const CAND_AT = HIST_AT + HBINS; // (key, index) pairs

struct Params {
  n: u32, nb: u32, rows: u32, slots: u32,
  words: u32, ctl_stride: u32, word: u32, shift: u32,
  bits: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> logits: array<f32>;
@group(0) @binding(2) var<storage, read> rows: array<i32>;
@group(0) @binding(3) var<storage, read> options: array<SlotOptions>;
@group(0) @binding(4) var<storage, read_write> presence: array<atomic<u32>>;
@group(0) @binding(5) var<storage, read_write> scores: array<f32>;
@group(0) @binding(6) var<storage, read_write> stats: array<f32>;
@group(0) @binding(7) var<storage, read_write> ctl: array<atomic<u32>>;
@group(0) @binding(8) var<storage, read_write> out: array<u32>;

var<workgroup> lhist: array<atomic<u32>, HBINS>;
var<workgroup> red: array<vec2f, WG>;
var<workgroup> gsum: array<u32, WG>;
var<workgroup> flag: u32;
var<workgroup> wg_greater: u32;
var<workgroup> pre: vec4u;
var<workgroup> lcount: atomic<u32>;
var<workgroup> lbase: u32;
var<workgroup> ckey: array<u32, MAX_CAP>;
var<workgroup> cidx: array<u32, MAX_CAP>;
var<workgroup> sval: array<f32, MAX_CAP / 2u>;
var<workgroup> chunk: array<f32, WG>;
var<workgroup> wg_block: u32;
var<workgroup> wg_rem: f32;

// ---- the row ----

// Row r of the batch: its options, and where its data starts in each binding. Uniform per workgroup (every
// entry point takes its row from workgroup_id.y).
struct Row { o: SlotOptions, slot: u32, step: u32, x: u32, st: u32, c: u32, pb: u32 }

fn row_of(r: u32) -> Row {
  let slot = min(u32(max(rows[r * ROW_FIELDS + ROW_SLOT], 0)), p.slots - 1u);
  let step = u32(rows[r * ROW_FIELDS + ROW_STEP]);
  return Row(options[slot], slot, step, r * p.n, r * 2u * p.nb, r * p.ctl_stride, slot * p.words);
}

// ---- helpers ----

// Monotone map f32 → u32: a < b ⇔ key(a) < key(b) (with -0 < +0).
fn order_key(s: f32) -> u32 {
  let b = bitcast<u32>(s);
  return select(b | 0x80000000u, ~b, b >= 0x80000000u);
}

fn from_key(k: u32) -> f32 {
  return bitcast<f32>(select(~k, k & 0x7fffffffu, k >= 0x80000000u));
}

fn composite(w: Row, i: u32) -> vec2u {
  return vec2u(order_key(scores[w.x + i]), ~i);
}

// repetition penalty (HF: s > 0 → s / p, else s · p) then temperature
fn processed(w: Row, i: u32) -> f32 {
  var s = logits[w.x + i];
  if (w.o.penalty != 1.0 && (atomicLoad(&presence[w.pb + (i >> 5u)]) & (1u << (i & 31u))) != 0u) {
    s = select(s * w.o.penalty, s / w.o.penalty, s > 0.0);
  }
  return s / w.o.temp;
}

// The all-token softmax normaliser is needed: full sampling, or top-p without top-k.
fn wants_stats(w: Row) -> bool {
  return w.o.mode == MODE_FULL || (w.o.mode == MODE_TOP && w.o.top_k == 0u);
}

// Softmax partials (max, Σexp(x − max)); -FLT_MAX stands for "empty", -inf inputs weigh 0.
fn push(a: vec2f, s: f32) -> vec2f {
  if (s > a.x) { return vec2f(s, a.y * exp(a.x - s) + 1.0); }
  return vec2f(a.x, a.y + exp(s - a.x));
}

fn merge(a: vec2f, b: vec2f) -> vec2f {
  let m = max(a.x, b.x);
  return vec2f(m, a.y * exp(a.x - m) + b.y * exp(b.x - m));
}

// The workgroup's softmax partials merged in a fixed tree order; every invocation gets the result.
fn reduce_stats(lid: u32, acc: vec2f) -> vec2f {
  red[lid] = acc;
  workgroupBarrier();
  for (var w = WG / 2u; w > 0u; w >>= 1u) {
    if (lid < w) { red[lid] = merge(red[lid], red[lid + w]); }
    workgroupBarrier();
  }
  return red[0];
}

// (max, Σexp(s − max)) over all n tokens of the row, from the scan's per-block partials; fixed tree order.
fn combine_stats(w: Row, lid: u32) -> vec2f {
  var acc = vec2f(-FLT_MAX, 0.0);
  for (var b = lid; b < p.nb; b += WG) { acc = merge(acc, vec2f(stats[w.st + 2u * b], stats[w.st + 2u * b + 1u])); }
  return reduce_stats(lid, acc);
}

fn mulhilo(a: u32, b: u32) -> vec2u {
  let a0 = a & 0xffffu;
  let a1 = a >> 16u;
  let b0 = b & 0xffffu;
  let b1 = b >> 16u;
  let p01 = a0 * b1;
  let p10 = a1 * b0;
  let mid = ((a0 * b0) >> 16u) + (p01 & 0xffffu) + (p10 & 0xffffu);
  return vec2u(a1 * b1 + (p01 >> 16u) + (p10 >> 16u) + (mid >> 16u), a * b);
}

// Philox2x32-10 (Salmon et al., SC'11), first output word.
fn philox(c0: u32, c1: u32, key: u32) -> u32 {
  var x = vec2u(c0, c1);
  var k = key;
  for (var r = 0u; r < 10u; r++) {
    let hl = mulhilo(0xD256D193u, x.x);
    x = vec2u(hl.x ^ k ^ x.y, hl.y);
    k += 0x9E3779B9u;
  }
  return x.x;
}

fn uniform01(w: Row) -> f32 {
  return f32(philox(w.step, 0u, w.o.seed) >> 8u) * (1.0 / 16777216.0);
}

fn emit(w: Row, id: u32) {
  out[w.slot] = id;
  atomicOr(&presence[w.pb + (id >> 5u)], 1u << (id & 31u));
}

fn clear_lhist(lid: u32) {
  for (var h = lid; h < HBINS; h += WG) { atomicStore(&lhist[h], 0u); }
  workgroupBarrier();
}

fn flush_lhist(w: Row, lid: u32) {
  workgroupBarrier();
  for (var h = lid; h < HBINS; h += WG) {
    let c = atomicLoad(&lhist[h]);
    if (c != 0u) { atomicAdd(&ctl[w.c + HIST_AT + h], c); }
  }
}

// Loads the row's done flag and selection state into workgroup memory; returns done (uniform).
fn load_state(w: Row, lid: u32) -> bool {
  if (lid == 0u) {
    flag = atomicLoad(&ctl[w.c + S_DONE]);
    wg_greater = atomicLoad(&ctl[w.c + S_GREATER]);
    pre = vec4u(atomicLoad(&ctl[w.c + S_PREFIX]), atomicLoad(&ctl[w.c + S_PREFIX + 1u]), atomicLoad(&ctl[w.c + S_MASK]), atomicLoad(&ctl[w.c + S_MASK + 1u]));
  }
  return workgroupUniformLoad(&flag) != 0u;
}

// ---- entry points ----

@compute @workgroup_size(WG)
fn init(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let w = row_of(wid.y);
  if (w.o.mode != MODE_TOP) { return; }
  for (var i = lid; i < HIST_AT + HBINS; i += WG) { atomicStore(&ctl[w.c + i], 0u); }
}

@compute @workgroup_size(WG)
fn scan(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let w = row_of(wid.y);
  let b = wid.x;
  if (w.o.mode == MODE_GREEDY || b >= p.nb) { return; }
  let hist = w.o.mode == MODE_TOP;
  let with_stats = wants_stats(w);
  if (hist) { clear_lhist(lid); }
  var acc = vec2f(-FLT_MAX, 0.0);
  let base = b * WG * PER;
  for (var k = 0u; k < PER; k++) {
    let i = base + k * WG + lid;
    if (i >= p.n) { break; }
    let s = processed(w, i);
    scores[w.x + i] = s;
    if (with_stats) { acc = push(acc, s); }
    if (hist) { atomicAdd(&lhist[order_key(s) >> 21u], 1u); }
  }
  if (with_stats) {
    let partial = reduce_stats(lid, acc);
    if (lid == 0u) {
      stats[w.st + 2u * b] = partial.x;
      stats[w.st + 2u * b + 1u] = partial.y;
    }
  }
  if (hist) { flush_lhist(w, lid); }
}

// One workgroup per row: finds the bin of digit (word, shift, bits) holding the want-th largest token, fixes it
// in the prefix, and clears the histogram for the next digit.
@compute @workgroup_size(WG)
fn pick_digit(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let w = row_of(wid.y);
  if (w.o.mode != MODE_TOP) { return; }
  if (load_state(w, lid)) { return; }
  let bins = 1u << p.bits;
  let per = (bins + WG - 1u) / WG;
  let lo = min(lid * per, bins);
  let hi = min(lo + per, bins);
  var c = 0u;
  for (var h = lo; h < hi; h++) { c += atomicLoad(&ctl[w.c + HIST_AT + h]); }
  gsum[lid] = c;
  workgroupBarrier();
  for (var d = 1u; d < WG; d <<= 1u) { // inclusive suffix sums
    var add = 0u;
    if (lid + d < WG) { add = gsum[lid + d]; }
    workgroupBarrier();
    gsum[lid] += add;
    workgroupBarrier();
  }
  let greater = wg_greater;
  let need = w.o.want - greater;
  var above = 0u;
  if (lid + 1u < WG) { above = gsum[lid + 1u]; }
  if (gsum[lid] >= need && above < need) {
    var cum = above;
    var h = hi;
    loop {
      h -= 1u;
      let ch = atomicLoad(&ctl[w.c + HIST_AT + h]);
      if (cum + ch >= need) {
        let g = greater + cum;
        let digit_mask = (bins - 1u) << p.shift;
        atomicStore(&ctl[w.c + S_GREATER], g);
        atomicStore(&ctl[w.c + S_PREFIX + p.word], pre[p.word] | (h << p.shift));
        atomicStore(&ctl[w.c + S_MASK + p.word], pre[2u + p.word] | digit_mask);
        atomicStore(&ctl[w.c + S_DONE], select(0u, 1u, g + ch <= w.o.cap));
        break;
      }
      cum += ch;
    }
  }
  // The histogram is storage memory, read above in blocks and cleared below in strides: storageBarrier (not
  // workgroupBarrier, which orders workgroup memory only) keeps the clears after every invocation's reads.
  storageBarrier();
  for (var h = lid; h < bins; h += WG) { atomicStore(&ctl[w.c + HIST_AT + h], 0u); }
}

// Histogram of digit (word, shift, bits) over the row's tokens inside the current boundary bin.
@compute @workgroup_size(WG)
fn refine(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let w = row_of(wid.y);
  let b = wid.x;
  if (w.o.mode != MODE_TOP || b >= p.nb) { return; }
  if (load_state(w, lid)) { return; }
  clear_lhist(lid);
  let pr = pre;
  let dmask = (1u << p.bits) - 1u;
  let base = b * WG * PER;
  for (var k = 0u; k < PER; k++) {
    let i = base + k * WG + lid;
    if (i >= p.n) { break; }
    let c = composite(w, i);
    if ((c.x & pr.z) == pr.x && (c.y & pr.w) == pr.y) {
      atomicAdd(&lhist[(select(c.x, c.y, p.word == 1u) >> p.shift) & dmask], 1u);
    }
  }
  flush_lhist(w, lid);
}

// Copies every token whose masked composite key is ≥ the boundary prefix into the row's candidate list. Two
// passes over the block (count, then write at this invocation's offset) keep per-invocation arrays out of the loop.
fn qualifies(w: Row, i: u32, pr: vec4u) -> bool {
  let c = composite(w, i);
  let mh = c.x & pr.z;
  return mh > pr.x || (mh == pr.x && (c.y & pr.w) >= pr.y);
}

@compute @workgroup_size(WG)
fn gather(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let w = row_of(wid.y);
  let b = wid.x;
  if (w.o.mode != MODE_TOP || b >= p.nb) { return; }
  if (lid == 0u) { atomicStore(&lcount, 0u); }
  _ = load_state(w, lid);
  let pr = pre;
  let base = b * WG * PER;
  let end = min(base + WG * PER, p.n);
  var mine = 0u;
  for (var i = base + lid; i < end; i += WG) { mine += select(0u, 1u, qualifies(w, i, pr)); }
  var at = 0u;
  if (mine > 0u) { at = atomicAdd(&lcount, mine); }
  workgroupBarrier();
  if (lid == 0u) { lbase = atomicAdd(&ctl[w.c + S_COUNT], atomicLoad(&lcount)); }
  at += workgroupUniformLoad(&lbase);
  if (mine == 0u) { return; }
  for (var i = base + lid; i < end; i += WG) {
    if (qualifies(w, i, pr)) {
      if (at < w.o.cap) {
        atomicStore(&ctl[w.c + CAND_AT + 2u * at], order_key(scores[w.x + i]));
        atomicStore(&ctl[w.c + CAND_AT + 2u * at + 1u], i);
      }
      at += 1u;
    }
  }
}

// Candidate a goes before b: higher score, then lower index.
fn before(ka: u32, ia: u32, kb: u32, ib: u32) -> bool {
  return ka > kb || (ka == kb && ia < ib);
}

@compute @workgroup_size(WG)
fn draw_top(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let w = row_of(wid.y);
  if (w.o.mode != MODE_TOP) { return; }
  var total = vec2f(0.0);
  if (w.o.top_k == 0u) { total = combine_stats(w, lid); } // the all-token normaliser of top-p without top-k
  let cap = w.o.cap;
  let cnt = min(atomicLoad(&ctl[w.c + S_COUNT]), cap);
  for (var j = lid; j < cap; j += WG) { // padding (key 0, NONE) sorts after every real token
    var k = 0u;
    var i = NONE;
    if (j < cnt) {
      k = atomicLoad(&ctl[w.c + CAND_AT + 2u * j]);
      i = atomicLoad(&ctl[w.c + CAND_AT + 2u * j + 1u]);
    }
    ckey[j] = k;
    cidx[j] = i;
  }
  workgroupBarrier();
  // bitonic sort of the row's cap entries into (score desc, index asc); the keys are distinct
  for (var k = 2u; k <= cap; k <<= 1u) {
    for (var j = k >> 1u; j > 0u; j >>= 1u) {
      for (var t = lid; t < cap / 2u; t += WG) {
        let a = 2u * t - (t & (j - 1u));
        let b = a + j;
        if (before(ckey[b], cidx[b], ckey[a], cidx[a]) == ((a & k) == 0u)) {
          let kt = ckey[a];
          let it = cidx[a];
          ckey[a] = ckey[b];
          cidx[a] = cidx[b];
          ckey[b] = kt;
          cidx[b] = it;
        }
      }
      workgroupBarrier();
    }
  }
  let top = from_key(ckey[0]);
  for (var r = lid; r < w.o.want; r += WG) { sval[r] = exp(from_key(ckey[r]) - top); }
  workgroupBarrier();
  if (lid == 0u) { emit(w, cidx[pick_top(w, total, top)]); }
}

// Thread 0 of draw_top: top-p cut over the sorted weights sval[0..want), then the draw among the kept.
fn pick_top(w: Row, total: vec2f, top: f32) -> u32 {
  var keep = w.o.want;
  if (w.o.top_p < 1.0) {
    var z = 0.0;
    if (w.o.top_k > 0u) {
      for (var r = 0u; r < w.o.want; r++) { z += sval[r]; }
    } else {
      z = total.y * exp(total.x - top);
    }
    let cut = w.o.top_p * z;
    var cum = 0.0;
    for (var r = 0u; r < w.o.want; r++) {
      if (r > 0u && cum >= cut) { keep = r; break; }
      cum += sval[r];
    }
  }
  var kept = 0.0;
  for (var r = 0u; r < keep; r++) { kept += sval[r]; }
  let goal = uniform01(w) * kept;
  var acc = 0.0;
  var pick = 0u;
  for (var r = 0u; r < keep; r++) {
    if (sval[r] > 0.0) { pick = r; }
    acc += sval[r];
    if (acc > goal) { break; }
  }
  return pick;
}

@compute @workgroup_size(WG)
fn draw_full(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let w = row_of(wid.y);
  if (w.o.mode != MODE_FULL) { return; }
  let total = combine_stats(w, lid);
  let m = total.x;
  let goal = uniform01(w) * total.y;
  if (lid == 0u) {
    var acc = 0.0;
    var blk = 0u;
    var rem = FLT_MAX; // no block reached the goal (rounding): the last token of weight > 0 is taken
    for (var b = 0u; b < p.nb; b++) {
      let wt = stats[w.st + 2u * b + 1u] * exp(stats[w.st + 2u * b] - m);
      if (wt > 0.0) { blk = b; }
      if (acc + wt > goal) { rem = goal - acc; break; }
      acc += wt;
    }
    wg_block = blk;
    wg_rem = rem;
  }
  let blk = workgroupUniformLoad(&wg_block);
  let rem = wg_rem;
  let start = blk * WG * PER + lid * PER;
  var s = 0.0;
  for (var k = 0u; k < PER; k++) {
    if (start + k < p.n) { s += exp(scores[w.x + start + k] - m); }
  }
  chunk[lid] = s;
  workgroupBarrier();
  if (lid == 0u) {
    var acc = 0.0;
    var c = 0u;
    var before = 0.0;
    for (var t = 0u; t < WG; t++) {
      if (chunk[t] > 0.0) { c = t; before = acc; }
      acc += chunk[t];
      if (acc > rem) { break; }
    }
    let first = blk * WG * PER + c * PER;
    var pick = first;
    var acc2 = before;
    for (var k = 0u; k < PER; k++) {
      if (first + k >= p.n) { break; }
      let e = exp(scores[w.x + first + k] - m);
      if (e > 0.0) { pick = first + k; }
      acc2 += e;
      if (acc2 > rem) { break; }
    }
    emit(w, pick);
  }
}
