"""The decision rules: which intent a read message asks for, as an explicit ordered tuple.

``RULES`` is tried in order and the first rule that names an intent wins, so the order is the policy: starting
over beats everything, a comparison beats a question about one product, asking for the item in view in another
variant ("got this with stripes?") is composed search before it could be a question, a photo with a change is
composed search before it could be a plain refinement. Messages no rule decides go to the embedding fallback
(``classify``).
"""

from __future__ import annotations

import re
from collections.abc import Callable

from atelier.assistant.parser.extract import ParseState, content, tidy
from atelier.memory.intent import ParseContext
from atelier.tools.taxonomy import Taxonomy

Rule = Callable[[ParseState, ParseContext], str | None]


def start_over(s: ParseState, c: ParseContext) -> str | None:
    return "start_over" if s.vocab.rules["start_over"].search(s.text) else None


def compare(s: ParseState, c: ParseContext) -> str | None:
    cues = s.vocab.cues
    if _states_preference(s):
        return None
    if s.vocab.rules["compare"].search(s.text) and (c.has_results or len(s.references) >= 2):
        return "compare"
    if cues.which_compares.search(s.text) and len(s.references) >= 2:
        return "compare"
    if c.has_results and cues.pair_differs.search(s.text) and cues.pair_words.search(s.text):
        return "compare"
    return None


def asks_listing_property(text: str) -> bool:
    """ "What is this made of?" asks a property only a listing states (material, care, price, size: the question
    types of ``prompts/vqa.yaml`` with no visual attribute), so it is a product question, not "what is this?"."""
    from atelier.tools.vqa import load_vqa_config

    types = load_vqa_config().types.values()
    return any(rule.search(text) for t in types if t.visual is None for rule in t.rules)


def describe(s: ParseState, c: ParseContext) -> str | None:
    if not (c.has_image or (c.has_reference and not s.references)):
        return None
    if s.vocab.rules["describe"].search(s.text) and not s.references and not asks_listing_property(s.text):
        return "describe" if c.has_image or s.vocab.references.pronouns.search(s.text) else None
    return None


def outfit(s: ParseState, c: ParseContext) -> str | None:
    if _states_preference(s) and not (s.must.get("category") or s.must.get("group")):
        return None
    if s.vocab.rules["outfit"].search(s.text):
        return "outfit"
    if (c.has_results or c.has_image or c.has_reference) and s.vocab.cues.outfit_split.search(s.text):
        return "outfit"
    return None


def variant_request(s: ParseState, c: ParseContext) -> str | None:
    """ "do you have this in stripes?", "got it with long sleeves?", "same but green", "any plain version?": the
    item in the photo or in focus, changed, is a composed search before it could read as a question about it."""
    if not (c.has_image or c.photo_in_focus or c.has_reference) or s.references:
        return None
    cues = s.vocab.cues
    if not cues.variant_request.search(s.text):
        return None
    return "composed" if s.has_change() or cues.variant_details.search(s.text) else None


def question(s: ParseState, c: ParseContext) -> str | None:
    vocab = s.vocab
    asks = s.raw.rstrip().endswith("?") or bool(vocab.question_openers.search(s.text))
    if not asks or vocab.request_openers.search(s.text) or s.show_more:
        return None
    about_product = bool(s.references) or s.this or bool(vocab.cues.product_parts.search(s.text))
    if not about_product or not (c.has_results or c.has_image or c.has_reference or s.references):
        return None
    if s.must.get("category") or s.must.get("group") or s.relative or s.similar:
        return None
    if vocab.cues.asks_in.search(s.text[:_first_facet_index(s)]) and s.has_change():
        return None
    return "question"


def composed(s: ParseState, c: ParseContext) -> str | None:
    if c.has_image and (s.has_change() or not s.text or s.similar or s.this
                        or s.vocab.cues.photo_similar.search(s.text)):
        return "composed"
    referenced = s.similar or (s.references and not s.like and not s.dislike)
    if referenced and (s.has_change() or (s.similar and content(tidy(s.change_text, s.vocab), s.vocab))):
        return "composed"
    if s.this and s.similar and s.has_change() and c.has_reference:
        return "composed"
    if c.photo_in_focus and (s.this or s.similar) and s.has_change():
        return "composed"
    return None


def help_or_chat(s: ParseState, c: ParseContext) -> str | None:
    if s.has_content():
        return None
    if s.vocab.rules["help"].search(s.text):
        return "help"
    rest = s.vocab.rules["chit_chat"].sub(" ", re.sub(r"[^a-z' ]", " ", s.text)).split()
    if s.text and all(w in s.vocab.cues.chat_filler for w in rest):
        return "help"
    return None


def feedback_only(s: ParseState, c: ParseContext) -> str | None:
    if (s.like or s.dislike or s.similar or s.show_more) and c.has_results:
        return "refine"
    return None


RULES: tuple[Rule, ...] = (start_over, compare, describe, outfit, variant_request, question, composed, help_or_chat,
                           feedback_only)


def decide(s: ParseState, c: ParseContext) -> str | None:
    """The intent of the first rule that names one."""
    for rule in RULES:
        intent = rule(s, c)
        if intent:
            return intent
    return None


def search_or_refine(s: ParseState, c: ParseContext, taxonomy: Taxonomy) -> str:
    """A new topic starts a search; anything that adjusts the current one is a refinement (naming a garment when
    none was named yet narrows the current search: "clothes for a 5 year old" then "a dress"). A search that found
    nothing is still the current topic: "rather navy" after no grey suit vests refines it."""
    if not (c.has_results or c.has_reference or c.category or c.group):
        return "search"
    named = set(s.must.get("category", [])) | set(s.must.get("group", []))
    current = set(c.category) | set(c.group)
    if named and current and not (named & current) and not s.vocab.refine_openers.search(s.text):
        groups = {taxonomy.group_of(v) if v in taxonomy.category_group else v for v in named}
        if not (c.group and not c.category and groups <= set(c.group)):
            return "search"
    return "refine"


def compared_ranks(s: ParseState, c: ParseContext) -> list[int]:
    """The two results a comparison is about: those named, digits and ordinals in the text, then the first shown
    ("compare them" / "which is cheaper?" without ranks: the first two, or the one named and the first)."""
    refs = list(s.references)
    if len(refs) >= 2:
        return refs
    digits = [int(d) for d in re.findall(r"(?<![\d.,$€£])\b(10|[1-9])\b(?![.,]?\d)", s.text)]
    ordinals = s.vocab.references.ordinals
    digits += [ordinals[w] for w in s.vocab.references.ordinal_word.findall(s.text)]
    refs = list(dict.fromkeys(refs + digits))
    for rank in (1, 2, 3):
        if len(refs) >= 2:
            break
        if rank not in refs:
            refs.append(rank)
    return refs[:2]


def _states_preference(s: ParseState) -> bool:
    """ "I prefer them in white", "let's go with navy": a preference verb with a facet value is a change."""
    return bool((s.must or s.avoid) and s.vocab.cues.preference.search(s.text))


def _first_facet_index(s: ParseState) -> int:
    for facet_values in (s.must, s.avoid):
        for values in facet_values.values():
            for value in values:
                index = s.text.find(value)
                if index >= 0:
                    return index
    return len(s.text)

