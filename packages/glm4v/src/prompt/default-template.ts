// Our chat template (Jinja, rendered with trim_blocks + lstrip_blocks as Hugging Face does). It renders exactly
// the documented GLM-4.1V prompt format (spec §5.1):
//   [gMASK]<sop>
//   system:    <|system|>\n{content}
//   user:      <|user|>\n{text | <|begin_of_image|><|image|><|end_of_image|> | <|begin_of_video|><|video|><|end_of_video|>}…
//   assistant: <|assistant|>{metadata}\n{content}  — with any <think>…</think> removed (earlier turns are fed back
//              without their reasoning, as the model card asks), leading whitespace after it dropped
//   generation prompt: <|assistant|>\n
// Used for checkpoints that carry no template and written into the tiny demo checkpoint as chat_template.jinja.

export const DEFAULT_CHAT_TEMPLATE = String.raw`[gMASK]<sop>
{%- for msg in messages %}
    {%- if msg.role == 'system' %}
<|system|>{{ '\n' }}
        {%- if msg.content is string %}
{{ msg.content }}
        {%- else %}
            {%- for item in msg.content %}
                {%- if item.type == 'text' %}
{{ item.text }}
                {%- endif %}
            {%- endfor %}
        {%- endif %}
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
        {%- set ns = namespace(text='') %}
        {%- if msg.content is string %}
            {%- set ns.text = msg.content %}
        {%- else %}
            {%- for item in msg.content %}
                {%- if item.type == 'text' %}
                    {%- set ns.text = ns.text + item.text %}
                {%- endif %}
            {%- endfor %}
        {%- endif %}
        {%- if '</think>' in ns.text %}
            {%- set ns.text = ns.text.split('</think>') | last %}
            {%- set ns.text = ns.text.lstrip() %}
        {%- endif %}
<|assistant|>
        {%- if msg.metadata %}
{{ msg.metadata }}
        {%- endif %}
{{ '\n' }}{{ ns.text }}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
<|assistant|>{{ '\n' }}
{%- endif %}
`;
