// Flash-decoding, first pass, fused with the text RoPE and the KV-cache store: one new token for each row of a
// batch (rows table: slot, cache position, rotary position), read straight from the fused q|k|v projection.
//
// A workgroup takes one (kv head, split of the row's keys, row): grid (kv_heads · head chunks, splits, rows). Its
// TEAMS teams of T lanes each own one query head of the kv head's group (no row is computed twice); lane l holds
// vec4s l, l + T, … of the head's rotated, scaled q and of its output accumulator: ND vec4s, at most 32 floats
// when T ≥ 4. For each key a lane reads only its vec4s of the key and value rows; the team's partial dot product
// is added with log2(T) subgroup shuffles (T = 1 on adapters without subgroups: the lane owns the whole head).
// Scores, running max and sum are per team, in base 2 (the scale carries log2 e).
//
// The row's keys are cache positions [0, pos] of its slot, split by its own key count (decode_split), so a row's
// arithmetic is the same in any batch. Keys [0, pos) come from the cache; the split holding position pos takes the
// new key and value from qkv (the key turned by RoPE), rounded to the cache's dtype as a cache read would give
// them, and its first head chunk writes them into the cache: no other workgroup of the dispatch reads position
// pos, so no separate store pass is needed. RoPE (decode: one position on the t, h and w streams, so the sections
// do not matter) turns the interleaved pairs of the first rot4 vec4s of each head, as rope.wgsl's `text` does.
// A row with one split writes its normalised output to `out`; otherwise each split writes its partial result
// (max m, sum l, unnormalised output) for attention_reduce.wgsl, which skips the one-split rows.
//
// Generated prefix (attention_decode.ts): the prelude (A, KV), T and ND constants, team_sum, sincos, the rows
// constants and decode_split/row_keys/row_slot (attention_layout.ts); DECODE_HEADER: the uniform block p and the
// bindings (params, qkv [rows, (heads + 2·kv_heads)·HD] A, rows i32 [M, ROW_FIELDS], kc, vc [slots, kv_heads,
// capacity, HD] KV, part [rows·heads, max_splits, HD/4 + 1] vec4 f32, out [rows, heads·HD] A).

override TEAMS: u32 = 16;     // query heads per workgroup, one per team of T lanes

const NEG = -3.0e38;          // a finite −∞: exp2(NEG − m) is 0 for any finite m

fn omega(j: u32) -> f32 {
  return p.omega[j >> 2u][j & 3u];
}

// vec4 d of a head (pairs 2d and 2d + 1) turned by the rotary position, rounded to A as the rope kernel stores it.
fn rope4(x: vec4<A>, d: u32, pos: f32) -> vec4f {
  let f = vec4f(x);
  if (d >= p.rot4) { return f; }
  let a = sincos(pos * omega(2u * d));
  let b = sincos(pos * omega(2u * d + 1u));
  return vec4f(vec4<A>(vec4f(f.x * a.y - f.y * a.x, f.y * a.y + f.x * a.x, f.z * b.y - f.w * b.x, f.w * b.y + f.z * b.x)));
}

@compute @workgroup_size(TEAMS * T)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let kvh = wid.x % p.kv_heads;
  let chunk = wid.x / p.kv_heads;
  let split = wid.y;
  let r = wid.z;
  let keys = row_keys(r, p.capacity);
  let sc = decode_split(keys, p.min_chunk, p.max_target);
  if (split >= sc.x) { return; } // uniform per workgroup: the shuffles below stay uniform
  let j0 = split * sc.y;
  let j1 = min(j0 + sc.y, keys);
  let raw_slot = rows[r * ROW_FIELDS + ROW_SLOT];
  let raw_pos = rows[r * ROW_FIELDS + ROW_POS];
  // the new token is key `keys - 1` unless its position is past the capacity (then the cache is only read)
  let fresh = j1 == keys && raw_pos >= 0 && u32(raw_pos) < p.capacity;
  let base = (row_slot(r, p.slots) * p.kv_heads + kvh) * p.capacity * p.hd4;
  let rope_pos = f32(rows[r * ROW_FIELDS + ROW_ROPE_POS]);
  let lane = lid % T;
  let hg = chunk * TEAMS + lid / T; // head within the group
  let head = kvh * p.group + min(hg, p.group - 1u); // teams past the group compute its last head, unwritten

  var qv: array<vec4f, ND>;
  var o: array<vec4f, ND>;
  var kn: array<vec4f, ND>;
  var vn: array<vec4f, ND>;
  let qa = r * p.qkv_row + head * p.hd4;
  let ka = r * p.qkv_row + p.k_off + kvh * p.hd4;
  let va = r * p.qkv_row + p.v_off + kvh * p.hd4;
  for (var i = 0u; i < ND; i++) {
    let d = lane + i * T;
    let e = min(d, p.hd4 - 1u);
    qv[i] = select(vec4f(0.0), rope4(qkv[qa + e], e, rope_pos) * p.scale, d < p.hd4);
    o[i] = vec4f(0.0);
    kn[i] = vec4f(vec4<KV>(rope4(qkv[ka + e], e, rope_pos)));
    vn[i] = vec4f(vec4<KV>(qkv[va + e]));
    if (fresh && chunk == 0u && lid < T && d < p.hd4 && raw_slot >= 0 && u32(raw_slot) < p.slots) {
      kc[base + u32(raw_pos) * p.hd4 + d] = vec4<KV>(kn[i]);
      vc[base + u32(raw_pos) * p.hd4 + d] = vec4<KV>(vn[i]);
    }
  }

  var m = NEG;
  var l = 0.0;
  let jc = select(j1, j1 - 1u, fresh); // keys read from the cache; then the new one
  for (var j = j0; j <= jc; j++) {
    let at = base + j * p.hd4;
    let is_new = j == jc;
    if (is_new && !fresh) { break; }
    var qk = vec4f(0.0);
    for (var i = 0u; i < ND; i++) {
      let d = min(lane + i * T, p.hd4 - 1u);
      qk = fma(qv[i], select(vec4f(kc[at + d]), kn[i], is_new), qk);
    }
    let s = team_sum(qk.x + qk.y + qk.z + qk.w);
    let mn = max(m, s);
    let corr = exp2(m - mn);
    let pj = exp2(s - mn);
    l = l * corr + pj;
    for (var i = 0u; i < ND; i++) {
      let d = min(lane + i * T, p.hd4 - 1u);
      o[i] = fma(vec4f(pj), select(vec4f(vc[at + d]), vn[i], is_new), o[i] * corr);
    }
    m = mn;
  }

  if (hg >= p.group) { return; }
  let heads = p.kv_heads * p.group;
  if (sc.x == 1u) {
    for (var i = 0u; i < ND; i++) {
      let d = lane + i * T;
      if (d < p.hd4) { out[(r * heads + head) * p.hd4 + d] = vec4<A>(o[i] / l); }
    }
    return;
  }
  let at = ((r * heads + head) * p.max_splits + split) * (p.hd4 + 1u);
  if (lane == 0u) { part[at] = vec4f(m, l, 0.0, 0.0); }
  for (var i = 0u; i < ND; i++) {
    let d = lane + i * T;
    if (d < p.hd4) { part[at + 1u + d] = o[i]; }
  }
}
