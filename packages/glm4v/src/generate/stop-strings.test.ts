import { describe, expect, it } from 'vitest';
import { StopStrings } from './stop-strings.js';

/** Pushes the pieces, then flushes: the text returned, and whether a stop string appeared. */
function run(stops: string[], pieces: string[]): { text: string; stopped: boolean } {
  const s = new StopStrings(stops);
  const text = pieces.map((p) => s.push(p)).join('') + s.flush();
  return { text, stopped: s.stopped };
}

describe('StopStrings', () => {
  it('cuts before a stop string split across pieces, and returns nothing after it', () => {
    expect(run(['END'], ['abc E', 'N', 'D more', ' text'])).toEqual({ text: 'abc ', stopped: true });
    expect(run(['猫!'], ['Yes,', '猫', '!', '?'])).toEqual({ text: 'Yes,', stopped: true });
  });

  it('holds back only a tail that may begin a stop string, and lets it go when it does not', () => {
    const s = new StopStrings(['</stop>']);
    expect(s.push('a </s')).toBe('a ');
    expect(s.push('x')).toBe('</sx');
    expect(s.push('<')).toBe('');
    expect(s.flush()).toBe('<');
    expect(s.stopped).toBe(false);
  });

  it('stops at the earliest of several stop strings, one a prefix of another', () => {
    expect(run(['cd', 'b'], ['abcd'])).toEqual({ text: 'a', stopped: true });
    expect(run(['abc', 'ab'], ['xa', 'bc'])).toEqual({ text: 'x', stopped: true });
    expect(run(['\n\n'], ['one\n', '\ntwo'])).toEqual({ text: 'one', stopped: true });
  });

  it('passes text through unchanged with no stop strings', () => {
    expect(run([], ['a', '<', 'b'])).toEqual({ text: 'a<b', stopped: false });
  });
});
