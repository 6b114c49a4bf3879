// Our chat template (Jinja, rendered with trim_blocks + lstrip_blocks as Hugging Face does). It renders exactly
// the documented GLM-4.1V prompt format (docs/model.md#chat-template), as the checkpoint's own template does:
//   [gMASK]<sop>
//   system:    <|system|>\n{content}
//   user:      <|user|>\n{text | <|begin_of_image|><|image|><|end_of_image|> | <|begin_of_video|><|video|><|end_of_video|>}…
//   assistant: <|assistant|>{metadata}\n{content}
//   generation prompt: <|assistant|>\n
// System and assistant contents arrive as one string, assistant ones already without their <think>…</think>
// (ChatTemplate.render does that for every template, since the hub's prints the content raw).
// Used for checkpoints that carry no template and written into the tiny demo checkpoint as chat_template.jinja.

export const DEFAULT_CHAT_TEMPLATE = String.raw`[gMASK]<sop>
{%- for msg in messages %}
    {%- if msg.role == 'system' %}
<|system|>{{ '\n' }}{{ msg.content }}
    {%- elif msg.role == 'user' %}
<|user|>{{ '\n' }}
        {%- if msg.content is string %}
{{ msg.content }}
        {%- else %}
            {%- for item in msg.content %}
                {%- if item.type == 'video' %}
<|begin_of_video|><|video|><|end_of_video|>
                {%- elif item.type == 'image' %}
<|begin_of_image|><|image|><|end_of_image|>
                {%- elif item.type == 'text' %}
{{ item.text }}
                {%- endif %}
            {%- endfor %}
        {%- endif %}
    {%- elif msg.role == 'assistant' %}
<|assistant|>
        {%- if msg.metadata %}
{{ msg.metadata }}
        {%- endif %}
{{ '\n' }}{{ msg.content }}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
<|assistant|>{{ '\n' }}
{%- endif %}
`;
