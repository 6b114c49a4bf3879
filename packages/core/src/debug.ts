// GLM4V_DEBUG: 0 silent (default), 1 device and plan summaries, 2 also every WGSL variant compiled.
export function debugLevel(): number {
  const v = Number(process.env.GLM4V_DEBUG ?? 0);
  return Number.isFinite(v) ? v : 0;
}
