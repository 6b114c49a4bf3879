// team_reduce for matvec.wgsl without subgroups: every lane stores its M × R partial sums in workgroup memory,
// lane v of each team adds up the team's T copies of sum v (the wrapper keeps MAX_M · R ≤ T), and every lane
// reads back the totals. Two barriers, whatever T.
var<workgroup> red: array<f32, MAX_M * R * WG>; // red[(m · R + r) · WG + lid]

fn team_reduce(acc: ptr<function, Sums>, lid: u32) {
  let lane = lid % T;
  let team = lid - lane;
  for (var m = 0u; m < MAX_M; m++) {
    if (m >= p.M) { continue; }
    for (var r = 0u; r < R; r++) { red[(m * R + r) * WG + lid] = (*acc)[m][r]; }
  }
  workgroupBarrier();
  if (lane < min(p.M, MAX_M) * R) {
    var s = 0.0;
    for (var t = 0u; t < T; t++) { s += red[lane * WG + team + t]; }
    red[lane * WG + team] = s; // only this lane reads or writes sum `lane` of this team
  }
  workgroupBarrier();
  for (var m = 0u; m < MAX_M; m++) {
    if (m >= p.M) { continue; }
    for (var r = 0u; r < R; r++) { (*acc)[m][r] = red[(m * R + r) * WG + team]; }
  }
}
