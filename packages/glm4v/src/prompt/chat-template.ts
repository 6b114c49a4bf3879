// Chat messages → prompt text through the checkpoint's Jinja chat template (chat_template.jinja, or the
// chat_template field of tokenizer_config.json), rendered with @huggingface/jinja, which applies trim_blocks and
// lstrip_blocks as Hugging Face does. Without either, our DEFAULT_CHAT_TEMPLATE (the documented format) is used.

import { Template } from '@huggingface/jinja';
import { ConfigError, InputError } from '@glm4v/core';
import { type ModelFolder, asFolder, parseJson, readTextFile } from '../files/folder.js';
import type { ImageInput } from '../preprocess/types.js';
import { DEFAULT_CHAT_TEMPLATE } from './default-template.js';

export type ContentPart =
  { type: 'text'; text: string } | { type: 'image'; image: ImageInput } | { type: 'video'; video: string };

export interface Message {
  role: 'system' | 'user' | 'assistant';
  content: string | ContentPart[];
}

/** What the template sees: media parts without their payloads (the template only needs their place). */
type TemplatePart = { type: 'text'; text: string } | { type: 'image' } | { type: 'video' };

const ROLES = new Set(['system', 'user', 'assistant']);

/** The text of a message's content: the string, or its text parts joined. */
function joinText(content: string | readonly TemplatePart[]): string {
  if (typeof content === 'string') return content;
  return content.map((p) => (p.type === 'text' ? p.text : '')).join('');
}

/**
 * An earlier assistant turn as fed back to the model: everything up to and including the last `</think>` cut,
 * then leading whitespace (docs/model.md#output-format: history goes back without its reasoning). Done here rather than
 * in a template, because the checkpoint's own template prints `{{ msg.content }}` raw.
 */
export function stripThinking(text: string): string {
  const end = text.lastIndexOf('</think>');
  return end < 0 ? text : text.slice(end + '</think>'.length).trimStart();
}

/**
 * Check `messages` and strip media payloads; InputError names the message and part at fault. System and assistant
 * contents become one string (the hub template prints them with `{{ msg.content }}`), assistant ones without their
 * thinking.
 */
function templateMessages(messages: readonly Message[]): { role: string; content: string | TemplatePart[] }[] {
  if (!Array.isArray(messages)) throw new InputError('messages must be an array');
  return messages.map((m, i) => {
    const at = `messages[${i}]`;
    if (typeof m !== 'object' || m === null || !ROLES.has(m.role)) {
      throw new InputError(
        `${at}.role must be 'system', 'user' or 'assistant', got ${JSON.stringify((m as Message | null)?.role)}`,
      );
    }
    const content = checkContent(m, at);
    if (m.role === 'user') return { role: m.role, content };
    const text = joinText(content);
    return { role: m.role, content: m.role === 'assistant' ? stripThinking(text) : text };
  });
}

/** A message's content with media payloads stripped; media only in user messages. */
function checkContent(m: Message, at: string): string | TemplatePart[] {
  if (typeof m.content === 'string') return m.content;
  if (!Array.isArray(m.content)) throw new InputError(`${at}.content must be a string or an array of parts`);
  const content: readonly ContentPart[] = m.content;
  return content.map((p, j): TemplatePart => {
    const pat = `${at}.content[${j}]`;
    if (p?.type === 'text') {
      if (typeof p.text !== 'string') throw new InputError(`${pat}.text must be a string`);
      return { type: 'text', text: p.text };
    }
    if (p?.type === 'image' || p?.type === 'video') {
      if (m.role !== 'user') throw new InputError(`${pat}: ${p.type}s may only appear in user messages, not ${m.role}`);
      return { type: p.type };
    }
    throw new InputError(
      `${pat}.type must be 'text', 'image' or 'video', got ${JSON.stringify((p as { type?: unknown })?.type)}`,
    );
  });
}

export class ChatTemplate {
  private readonly template: Template;

  /** `origin`: the file the template came from, or 'builtin'. */
  constructor(
    readonly source: string,
    readonly origin: string,
  ) {
    try {
      this.template = new Template(source);
    } catch (e) {
      throw new ConfigError(`${origin}: chat template does not parse: ${(e as Error).message}`, { cause: e });
    }
  }

  /** Our template for the documented format (docs/model.md#chat-template). */
  static builtin(): ChatTemplate {
    return new ChatTemplate(DEFAULT_CHAT_TEMPLATE, 'builtin');
  }

  /** `dir`/chat_template.jinja, else `dir`/tokenizer_config.json's chat_template, else the builtin template. */
  static async load(dir: string | ModelFolder): Promise<ChatTemplate> {
    const folder = asFolder(dir);
    const text = await readTextFile(folder, 'chat_template.jinja', false);
    if (text !== undefined) return new ChatTemplate(text, folder.path('chat_template.jinja'));
    const cfgFile = folder.path('tokenizer_config.json');
    const cfgText = await readTextFile(folder, 'tokenizer_config.json', false);
    if (cfgText !== undefined) {
      const cfg = parseJson(cfgText, cfgFile) as { chat_template?: unknown } | null;
      const t = pickTemplate(cfg?.chat_template, cfgFile);
      if (t !== undefined) return new ChatTemplate(t, `${cfgFile} (chat_template)`);
    }
    return ChatTemplate.builtin();
  }

  /** The prompt text of `messages`; `addGenerationPrompt` (default true) ends it with the assistant's turn. */
  render(messages: readonly Message[], opts: { addGenerationPrompt?: boolean } = {}): string {
    const msgs = templateMessages(messages);
    try {
      return this.template.render({ messages: msgs, add_generation_prompt: opts.addGenerationPrompt ?? true });
    } catch (e) {
      throw new InputError(`chat template (${this.origin}) failed to render these messages: ${(e as Error).message}`, {
        cause: e,
      });
    }
  }
}

/** chat_template is a string, or a list of {name, template} (the one named 'default' is used). */
function pickTemplate(v: unknown, file: string): string | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v === 'string') return v;
  if (Array.isArray(v)) {
    const d = v.find((t) => t && typeof t === 'object' && (t as { name?: unknown }).name === 'default') as
      { template?: unknown } | undefined;
    if (d && typeof d.template === 'string') return d.template;
  }
  throw new ConfigError(`${file}: 'chat_template' must be a string or a list with a 'default' entry`);
}
