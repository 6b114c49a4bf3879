// The one table of checkpoint key renames (docs/model.md#renames). The official checkpoint already uses the names the model
// asks for; third-party re-saves made with older Qwen2-VL-style code use the prefixes on the left. The first
// matching prefix wins. Names matching no rule stay as they are; a name the model never asks for is reported
// unused by WeightLoader.finish().

export const KEY_RENAMES: readonly (readonly [from: string, to: string])[] = Object.freeze([
  ['visual.', 'model.visual.'],
  ['model.layers.', 'model.language_model.layers.'],
  ['model.embed_tokens.', 'model.language_model.embed_tokens.'],
  ['model.norm.', 'model.language_model.norm.'],
] as const);

/** The canonical name of a checkpoint key. */
export function renameKey(name: string): string {
  for (const [from, to] of KEY_RENAMES) if (name.startsWith(from)) return to + name.slice(from.length);
  return name;
}
