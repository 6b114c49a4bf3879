// Job lines → JobSpecs (no model): what is accepted, how paths resolve, and that every malformed line is an error
// naming its file and line; the results file: resume, a cut-off last line, a foreign file.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ContextOverflowError, DeviceLostError, InputError, LimitError } from '@glm4v/core';
import { describeError, errorKind, parseJobs } from './jobs.js';
import { ResultsFile } from './results.js';

describe('parseJobs', () => {
  it('turns prompt and messages lines into specs, with options and defaults', () => {
    const text = [
      '{"id": "a", "prompt": "Describe it.", "images": ["pics/cat.jpg", "/abs/dog.png", "https://example.org/x.png"], "max_new_tokens": 7, "system": "Be brief."}',
      '',
      '{"id": 2, "prompt": "Sum up.", "video": "clip.mp4", "temperature": 0, "stop": ["END"]}',
      '{"id": "m", "messages": [{"role": "user", "content": [{"type": "image", "image": {"path": "scan.png"}}, {"type": "text", "text": "Read it."}]}]}',
    ].join('\n');
    const [a, b, m] = parseJobs(text, '/data/jobs.jsonl', { seed: 9, maxNewTokens: 100 });
    expect(a).toEqual({
      id: 'a',
      line: 1,
      messages: [
        { role: 'system', content: 'Be brief.' },
        {
          role: 'user',
          content: [
            { type: 'image', image: { path: '/data/pics/cat.jpg' } },
            { type: 'image', image: { path: '/abs/dog.png' } },
            { type: 'image', image: { url: 'https://example.org/x.png' } },
            { type: 'text', text: 'Describe it.' },
          ],
        },
      ],
      options: { seed: 9, maxNewTokens: 7 },
    });
    expect(b.line).toBe(3);
    expect(b.options).toEqual({ seed: 9, maxNewTokens: 100, temperature: 0, stop: ['END'] });
    expect(b.messages[0].content).toEqual([
      { type: 'video', video: '/data/clip.mp4' },
      { type: 'text', text: 'Sum up.' },
    ]);
    expect(m.messages[0].content).toEqual([
      { type: 'image', image: { path: '/data/scan.png' } },
      { type: 'text', text: 'Read it.' },
    ]);
    expect([a, b, m].every((s) => s.error === undefined)).toBe(true);
  });

  it('makes every malformed line an error naming the file and line, keeping the id when it can be read', () => {
    const lines = [
      'not json', // 1
      '[1, 2]', // 2
      '{"prompt": "no id"}', // 3
      '{"id": 1.5, "prompt": "x"}', // 4
      '{"id": "u", "prompt": "x", "max_tokens": 5}', // 5
      '{"id": "v", "prompt": "x", "max_new_tokens": 0}', // 6
      '{"id": "w", "prompt": "x", "top_p": "high"}', // 7
      '{"id": "x"}', // 8
      '{"id": "y", "prompt": "x", "images": "one.png"}', // 9
      '{"id": "z", "messages": [], "prompt": "x"}', // 10
      '{"id": "ok", "prompt": "fine"}', // 11
      '{"id": "ok", "prompt": "again"}', // 12
      '{"id": "q", "messages": [{"role": "user", "content": [{"type": "image", "image": "a.png"}]}]}', // 13
      '{"id": "s", "prompt": "x", "stop": "END"}', // 14
    ];
    const specs = parseJobs(lines.join('\n'), 'jobs.jsonl');
    const errs = Object.fromEntries(specs.map((s) => [s.line, [s.id, s.error]]));
    const expected: Record<number, [unknown, RegExp]> = {
      1: ['line:1', /^jobs\.jsonl:1: not valid JSON/],
      2: ['line:2', /^jobs\.jsonl:2: a job must be a JSON object/],
      3: ['line:3', /^jobs\.jsonl:3: "id" must be/],
      4: ['line:4', /^jobs\.jsonl:4: "id" must be/],
      5: ['u', /^jobs\.jsonl:5: unknown key "max_tokens"/],
      6: ['v', /^jobs\.jsonl:6: max_new_tokens = 0: expected an integer ≥ 1/],
      7: ['w', /^jobs\.jsonl:7: top_p = high/],
      8: ['x', /^jobs\.jsonl:8: a job needs "messages" or a "prompt"/],
      9: ['y', /^jobs\.jsonl:9: "images" must be an array/],
      10: ['z', /^jobs\.jsonl:10: give either "messages" or "prompt"/],
      12: ['line:12', /^jobs\.jsonl:12: duplicate id "ok" \(first on line 11\)/],
      13: ['q', /^jobs\.jsonl:13: messages\[0\]\.content\[0\]\.image must be/],
      14: ['s', /^jobs\.jsonl:14: stop: expected an array of strings/],
    };
    for (const [line, [id, re]] of Object.entries(expected)) {
      expect(errs[line][0], `line ${line}`).toBe(id);
      expect(errs[line][1], `line ${line}`).toMatch(re);
    }
    expect(errs[11]).toEqual(['ok', undefined]);
  });

  it('takes the media and output options as job keys, checked as the flags are', () => {
    const text = [
      '{"id": "a", "prompt": "x", "min_pixels": 3136, "max_pixels": 20000, "fps": 1.5, "max_frames": 8, "show_special": true}',
      '{"id": "b", "prompt": "x", "min_pixels": 9000, "max_pixels": 8000}',
      '{"id": "c", "prompt": "x", "max_frames": 1}',
      '{"id": "d", "prompt": "x", "show_special": "yes"}',
    ].join('\n');
    const [a, b, c, d] = parseJobs(text, 'jobs.jsonl', { showSpecial: false, fps: 2 });
    expect(a.error).toBeUndefined();
    expect(a.options).toEqual({ minPixels: 3136, maxPixels: 20000, fps: 1.5, maxFrames: 8, showSpecial: true });
    expect(b.error).toMatch(/^jobs\.jsonl:2: min_pixels = 9000 is above max_pixels = 8000$/);
    expect(c.error).toMatch(/^jobs\.jsonl:3: max_frames = 1: expected an integer ≥ 2$/);
    expect(d.error).toMatch(/^jobs\.jsonl:4: show_special = "yes": expected true or false$/);
  });

  it('sorts failures into bad jobs, fatal device errors and retryable ones', () => {
    expect(errorKind(new InputError('x'))).toBe('job');
    expect(errorKind(new ContextOverflowError('x'))).toBe('job');
    expect(errorKind(new LimitError('x'))).toBe('job');
    expect(errorKind(Object.assign(new Error('gone'), { code: 'ENOENT' }))).toBe('job');
    expect(errorKind(new DeviceLostError('destroyed', 'x'))).toBe('fatal');
    expect(errorKind(new Error('socket hang up'))).toBe('retry');
    expect(describeError(new InputError('bad\nsecond line'))).toEqual({ code: 'INPUT', message: 'bad' });
  });
});

describe('ResultsFile', () => {
  let tmp: string;
  beforeAll(async () => {
    tmp = await mkdtemp(join(tmpdir(), 'glm4v-results-'));
  });
  afterAll(async () => {
    await rm(tmp, { recursive: true, force: true });
  });
  const ok = (id: string | number) => ({
    id,
    answer: 'a',
    thinking: '',
    finish_reason: 'stop' as const,
    usage: { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2 },
  });

  it('appends lines, resumes with the done ids, and removes a cut-off last line', async () => {
    const path = join(tmp, 'r.jsonl');
    const r = await ResultsFile.open(path, false);
    await r.append(ok('a'));
    await r.append({ ...ok(7), answer: null, error: { code: 'INPUT', message: 'x' } });
    await r.close();
    const cut = Buffer.from('{"id":"b","answer":"中').subarray(0, -1); // killed inside a UTF-8 character
    await writeFile(path, Buffer.concat([await readFile(path), cut]));
    const again = await ResultsFile.open(path, true);
    expect(again.repairedBytes).toBe(cut.length);
    expect([...again.done]).toEqual([
      ['a', true],
      ['7', false],
    ]);
    await again.append(ok('b'));
    await again.close();
    expect((await readFile(path, 'utf8')).split('\n').map((l) => l && JSON.parse(l).id)).toEqual(['a', 7, 'b', '']);
  });

  it('refuses to mix a new run into a file with results, and a file that is not results', async () => {
    const path = join(tmp, 'r2.jsonl');
    await writeFile(path, `${JSON.stringify(ok('a'))}\n`);
    await expect(ResultsFile.open(path, false)).rejects.toThrow(/already holds results: give --resume/);
    await writeFile(path, `${JSON.stringify(ok('a'))}\nhello\n`);
    await expect(ResultsFile.open(path, true)).rejects.toThrow(/r2\.jsonl:2: not a result line/);
  });
});
