// A conversation with a loaded model, its KV cache kept across turns:
//   const chat = model.chat([{ role: 'system', content: 'Be brief.' }]);
//   for await (const ev of chat.send([{ type: 'image', image: { path } }, { type: 'text', text: 'What is it?' }])) ...
//   await chat.sendText('And its colour?');       // prefills only what the last reply and this message add
//   chat.dispose();
// Each turn renders the whole history as a fresh request would (earlier replies without their thinking,
// docs/model.md#output-format) and prefills only the tokens the cache does not already hold (generate/conversation.ts); images and videos
// of earlier turns are not decoded again. A conversation carries images or videos, not both. Each turn is a batch
// of one on the Batcher over the chat's own session (Engine.decode), which keeps its slot between turns.

import type { Engine } from './generate/engine.js';
import { ConversationCache } from './generate/conversation.js';
import { type GenerateEvent, type GenerateResult, collect } from './generate/events.js';
import { type GenerateOptions, resolveOptions } from './generate/options.js';
import type { TurnRecord } from './generate/turn.js';
import { type MediaLayout, type PreparedPrompt, mediaParts, prepareMessages } from './processor.js';
import type { ContentPart, Message } from './prompt/chat-template.js';

export class Chat {
  private history: Message[];
  private readonly cache: ConversationCache;
  /** The layout of every image and video of the history, by content part: they are not decoded again. */
  private known = new Map<object, MediaLayout>();

  /** Made by Glm4v.chat(). */
  constructor(
    private readonly engine: Engine,
    private readonly initial: readonly Message[] = [],
  ) {
    this.history = [...initial];
    this.cache = new ConversationCache(engine.model, engine.kvCacheDType);
  }

  /** The conversation so far: the initial messages, then each user message and reply (its thinking included). */
  get messages(): readonly Message[] {
    return this.history;
  }

  /**
   * Sends a user message and streams the reply, as Glm4v.generate does. The message and the reply join the
   * history once the reply ends (an aborted reply is kept as far as it went); a failed turn leaves no trace.
   */
  send(content: string | ContentPart[], options: GenerateOptions = {}): AsyncGenerator<GenerateEvent> {
    return this.engine.reply(options, (signal, record) =>
      this.turn({ role: 'user', content }, options, signal, record),
    );
  }

  /** send() to the end, collected; `onEvent` sees every event as it comes. */
  sendText(
    content: string | ContentPart[],
    options: GenerateOptions = {},
    onEvent?: (ev: GenerateEvent) => void,
  ): Promise<GenerateResult> {
    return collect(this.send(content, options), onEvent);
  }

  private async *turn(
    message: Message,
    options: GenerateOptions,
    signal: AbortSignal,
    record: TurnRecord,
  ): AsyncGenerator<GenerateEvent> {
    const { model, processor } = this.engine;
    const opt = resolveOptions(processor.generation, options);
    record.seed = opt.seed;
    const messages = [...this.history, message];
    let prompt = await prepareMessages(processor, { messages }, options, {}, this.known);
    let cached = this.cache.reusable(prompt);
    if (!prompt.covers(cached)) {
      // the template rendered an earlier turn differently: prepare every image again and prefill from there
      prompt = await processor.prepare({ messages }, options);
      cached = this.cache.reusable(prompt);
    }
    processor.checkLimits(prompt, model.device.limits);
    record.promptTokens = prompt.ids.length;
    const capacity = processor.contextFor(prompt.ids.length, options);
    if (signal.aborted) return;
    const input = await this.cache.keep(
      prompt,
      cached,
      capacity,
      options.contextLength ?? model.config.text.maxPositionEmbeddings,
    );
    try {
      yield* this.engine.decode(this.cache.session!, { input, promptIds: prompt.ids, opt, record, signal });
    } finally {
      this.cache.commit(prompt.ids, record.tokens);
    }
    this.remember(messages, prompt, record.tokens, opt.stop);
  }

  /**
   * The history after a turn: its messages, the reply as the model wrote it (but for a final stop token, text
   * after a stop string, and image or video tokens, which the next turn would take for media), and the layout
   * of its media.
   */
  private remember(
    messages: Message[],
    prompt: PreparedPrompt,
    tokens: readonly number[],
    stop: readonly string[],
  ): void {
    mediaParts(messages).forEach((part, i) => this.known.set(part, prompt.media[i]));
    const t = this.engine.processor.config.tokens;
    const media = new Set([t.image, t.video, t.imageStart, t.imageEnd, t.videoStart, t.videoEnd]);
    const end = tokens.length > 0 && this.engine.eos.has(tokens[tokens.length - 1]) ? tokens.length - 1 : tokens.length;
    let reply = this.engine.processor.tokenizer.decode(tokens.slice(0, end).filter((id) => !media.has(id)));
    const at = Math.min(...stop.map((s) => reply.indexOf(s)).filter((i) => i >= 0));
    if (Number.isFinite(at)) reply = reply.slice(0, at);
    this.history = [...messages, { role: 'assistant', content: reply }];
  }

  /** Starts over from the initial messages (the KV cache's memory is kept for the next turn). */
  reset(): void {
    this.history = [...this.initial];
    this.known = new Map();
    this.cache.clear();
  }

  /** Frees the KV cache. The chat can go on afterwards (the next turn prefills the whole history). */
  dispose(): void {
    this.cache.dispose();
  }
}
