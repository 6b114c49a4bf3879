// GLM4V_DEBUG: 0 silent (default), 1 device and plan summaries, 2 also every WGSL variant compiled.
// Under Node it is an environment variable; in a page, `globalThis.GLM4V_DEBUG`.
import { debugWrite, env } from '#host';

export function debugLevel(): number {
  const v = Number(env('GLM4V_DEBUG') ?? 0);
  return Number.isFinite(v) ? v : 0;
}

/** Writes a debug line (stderr under Node, the console in a page). */
export function debugLog(text: string): void {
  debugWrite(text);
}
