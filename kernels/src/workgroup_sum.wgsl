// workgroup_sum(v, lid): the sum of v over the WG invocations of a workgroup, in a fixed tree order; every
// invocation gets it. Prepended by norms.ts to the row kernels that reduce (rmsnorm, rmsnorm_residual, layernorm),
// after the prelude; the kernel declares `override WG: u32` and calls it from uniform control flow.

var<workgroup> partial: array<f32, WG>;

fn workgroup_sum(v: f32, lid: u32) -> f32 {
  partial[lid] = v;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s >>= 1u) {
    if (lid < s) { partial[lid] += partial[lid + s]; }
    workgroupBarrier();
  }
  let total = partial[0];
  workgroupBarrier(); // everyone has read partial[0] before it is reused
  return total;
}
