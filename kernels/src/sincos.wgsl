// sincos(a): shared by rope.wgsl and attention_decode.wgsl (prepended by their wrappers).

// sin and cos (as .x, .y) of an f32 angle with an absolute error near 1e-7 for |a| < 102943 (|q| < 2^16): the
// angle is reduced by q·π/2 with π/2 split into four pieces, the first three of 8 significant bits, so each q·piece
// is exact and the subtractions lose nothing; then minimax polynomials on [−π/4, π/4] (tools/fit-kernel-polys.py).
// Built-in sin/cos promise far less for large arguments on some devices, and positions reach 65535.
fn sincos(a: f32) -> vec2f {
  let q = round(a * 0.63661977);
  var r = a - q * 1.5703125;
  r = r - q * 4.825592041015625e-4;
  r = r - q * 1.2665987014770508e-6;
  r = r - q * 9.920935796805404e-10;
  let s = r * r;
  let sn = r + r * s * (-0.16666654 + s * (0.008332071 + s * -0.00019503068));
  let cs = 1.0 - 0.5 * s + s * s * (0.041666642 + s * (-0.0013887194 + s * 2.4419196e-05));
  // quadrant k: (sin, cos) = (s, c), (c, −s), (−s, −c), (−c, s) for k = 0..3, without branches
  let k = i32(q) & 3;
  let odd = (k & 1) != 0;
  let s1 = select(sn, cs, odd);
  let c1 = select(cs, sn, odd);
  return vec2f(select(s1, -s1, (k & 2) != 0), select(c1, -c1, ((k + 1) & 2) != 0));
}
