// bench:model --profile: a few decode steps run with a timestamp per dispatch; the step with the least GPU time is
// reported as its GPU time summed over its dispatches (gaps between them excluded) and a table per kernel family.

import type { ProfileEntry } from '@glm4v/core';
import type { DecodeStep, Session } from '@glm4v/runtime/internal';

/** Decode steps profiled; the one with the least GPU time is reported. */
export const PROFILE_STEPS = 5;

export interface DecodeProfile {
  dispatches: number;
  gpuMs: number;
  families: { family: string; dispatches: number; ms: number; share: number }[];
}

/** Profiles PROFILE_STEPS replays of `step` for `session` (which must have room for them). */
export async function profileDecode(step: DecodeStep, session: Session): Promise<DecodeProfile> {
  let best: ProfileEntry[] | undefined;
  for (let i = 0; i < PROFILE_STEPS; i++) {
    const e = await step.profile([session]);
    if (!best || sum(e) < sum(best)) best = e;
  }
  return { dispatches: best!.length, gpuMs: sum(best!), families: byFamily(best!) };
}

/** A kernel label's family: the words before its dtype tag ('matvec_bf16w_f32a_bcast8x4_m1' → 'matvec'). */
function kernelFamily(label: string): string {
  const words = label.split('_');
  const end = words.findIndex((w) => /^(bf16|f16|f32|i32|u32|q8|q4)/.test(w));
  return words.slice(0, end < 1 ? words.length : end).join('_');
}

/** Per family: dispatches, GPU ms and share of the step, largest first. */
function byFamily(entries: readonly ProfileEntry[]): DecodeProfile['families'] {
  const total = sum(entries);
  const m = new Map<string, { dispatches: number; ms: number }>();
  for (const e of entries) {
    const f = m.get(kernelFamily(e.label)) ?? { dispatches: 0, ms: 0 };
    f.dispatches++;
    f.ms += e.ms;
    m.set(kernelFamily(e.label), f);
  }
  return [...m].map(([family, f]) => ({ family, ...f, share: f.ms / total })).sort((a, b) => b.ms - a.ms);
}

function sum(entries: readonly ProfileEntry[]): number {
  return entries.reduce((s, e) => s + e.ms, 0);
}
