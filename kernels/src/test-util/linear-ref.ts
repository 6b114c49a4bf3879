// The float64 reference of the linear kernels (matmul.test.ts, matmul_quant.test.ts) and the scale of its tolerance.

// float64 reference: y[m, n] = Σ_k x[m, k] · w[n, k] + b[n]
export function linearRef(
  x: Float64Array,
  w: Float64Array,
  b: Float64Array | undefined,
  M: number,
  N: number,
  K: number,
): Float64Array {
  const y = new Float64Array(M * N);
  for (let m = 0; m < M; m++) {
    for (let n = 0; n < N; n++) {
      let s = b ? b[n] : 0;
      for (let k = 0; k < K; k++) s += x[m * K + k] * w[n * K + k];
      y[m * N + n] = s;
    }
  }
  return y;
}

// The tolerance's scale. |y[m, n]| ≤ |x_m|₂·|w_n|₂ (Cauchy–Schwarz), and the f32 rounding error of a length-K dot
// product of such vectors is a small multiple of eps·|x_m|₂·|w_n|₂ (for random signs the partial sums are a random
// walk, so it grows with K like |x|₂·|w|₂ ≈ K·σ², not like the typical |y| ≈ √K·σ²). Scaling by the largest
// product keeps the budget K-independent in units of eps while a single wrong term (≈ σ²) still fails for any K
// up to 10⁵. The bias adds its own magnitude.
export function scaleOf(
  x: Float64Array,
  w: Float64Array,
  b: Float64Array | undefined,
  M: number,
  N: number,
  K: number,
): number {
  const maxNorm = (a: Float64Array, rows: number) => {
    let best = 0;
    for (let r = 0; r < rows; r++) {
      let s = 0;
      for (let k = 0; k < K; k++) s += a[r * K + k] ** 2;
      best = Math.max(best, Math.sqrt(s));
    }
    return best;
  };
  let bmax = 0;
  if (b) for (const v of b) bmax = Math.max(bmax, Math.abs(v));
  return maxNorm(x, M) * maxNorm(w, N) + bmax;
}

/**
 * x [M, 2K] as gate | up halves (an MLP's gate_up output) → silu(gate) · up [M, K] in float64: the input a linear
 * layer with `swiglu` multiplies. Without `swiglu`, x itself.
 */
export function linearInput(x: Float64Array, M: number, K: number, swiglu: boolean | undefined): Float64Array {
  if (!swiglu) return x;
  const out = new Float64Array(M * K);
  for (let m = 0; m < M; m++) {
    for (let k = 0; k < K; k++) {
      const gate = x[m * 2 * K + k];
      out[m * K + k] = (gate / (1 + Math.exp(-gate))) * x[m * 2 * K + K + k];
    }
  }
  return out;
}
