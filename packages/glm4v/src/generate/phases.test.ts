import { describe, expect, it } from 'vitest';
import { type PhasedText, PhaseSplitter } from './phases.js';

function run(pieces: string[], keepBoxMarkers = false): PhasedText[] {
  const s = new PhaseSplitter({ keepBoxMarkers });
  const out = [...pieces.flatMap((p) => s.push(p)), ...s.flush()];
  // merge consecutive pieces of one phase, as a reader would see them
  return out.reduce<PhasedText[]>((acc, p) => {
    const last = acc[acc.length - 1];
    if (last && last.phase === p.phase) last.text += p.text;
    else acc.push({ ...p });
    return acc;
  }, []);
}

describe('PhaseSplitter', () => {
  it('splits thinking from the answer and drops the tags and the whitespace between', () => {
    expect(run(['<think>', 'Got it, a cat.', '</think>', '\n', '<answer>', 'A cat.', '</answer>'])).toEqual([
      { text: 'Got it, a cat.', phase: 'thinking' },
      { text: 'A cat.', phase: 'answer' },
    ]);
  });

  it('recognises tags split across pieces, and keeps a lone < that is no tag', () => {
    expect(run(['<thi', 'nk>x < y', '</th', 'ink><ans', 'wer>ok <b> 1<2'])).toEqual([
      { text: 'x < y', phase: 'thinking' },
      { text: 'ok <b> 1<2', phase: 'answer' },
    ]);
  });

  it('treats text with no tags as the answer, and flushes a held partial tag as text', () => {
    expect(run(['plain answer ', '<thin'])).toEqual([{ text: 'plain answer <thin', phase: 'answer' }]);
  });

  it('drops box markers, whole or split across pieces, and keeps Chinese text and the box contents', () => {
    const pieces = ['<think>想一想</think><answer>猫 <|begin_of', '_box|>[1, 2, 3, 4]<|end_of_box|', '></answer>'];
    expect(run(pieces)).toEqual([
      { text: '想一想', phase: 'thinking' },
      { text: '猫 [1, 2, 3, 4]', phase: 'answer' },
    ]);
    expect(run(pieces, true)).toEqual([
      { text: '想一想', phase: 'thinking' },
      { text: '猫 <|begin_of_box|>[1, 2, 3, 4]<|end_of_box|>', phase: 'answer' },
    ]);
  });
});
