// team_reduce for matvec.wgsl with subgroups: a butterfly of shuffles within each aligned group of T lanes, after
// which every lane holds its team's totals. The wrapper picks T ≤ the adapter's smallest subgroup size, so a team
// never straddles two subgroups.
fn team_reduce(acc: ptr<function, Sums>, lid: u32) {
  for (var m = 0u; m < MAX_M; m++) {
    if (m >= p.M) { continue; }
    for (var r = 0u; r < R; r++) {
      var s = (*acc)[m][r];
      for (var o = T / 2u; o > 0u; o >>= 1u) { s += subgroupShuffleXor(s, o); }
      (*acc)[m][r] = s;
    }
  }
}
