"""What a message says, before deciding what it asks: references to shown results (and the reaction to them),
prices, relative feedback, and facet values with the scope each falls in (must / avoid / allow).

Each step reads ``ParseState.work`` and takes out what it understood, so later steps see only the rest (a price
is not a rank, "cheaper" is not a detail). Constraints follow SoFT's must-have / must-avoid split.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from atelier.assistant.parser.vocabulary import Vocabulary
from atelier.memory.intent import ParseContext
from atelier.tools.lexicon import in_negation_scope
from atelier.tools.query_parser import parse_price
from atelier.tools.taxonomy import Mention, Taxonomy


@dataclass
class ParseState:
    """One message while it is read: the text, what is left of it, and everything found so far."""

    raw: str
    text: str
    work: str
    vocab: Vocabulary
    references: list[int] = field(default_factory=list)
    similar: list[int] = field(default_factory=list)
    like: list[int] = field(default_factory=list)
    dislike: list[int] = field(default_factory=list)
    relative: list[str] = field(default_factory=list)
    must: dict[str, list[str]] = field(default_factory=dict)
    avoid: dict[str, list[str]] = field(default_factory=dict)
    allow: dict[str, list[str]] = field(default_factory=dict)
    price_min: float | None = None
    price_max: float | None = None
    this: bool = False
    show_more: bool = False
    spans: list[tuple[int, int]] = field(default_factory=list)
    change_text: str = ""

    def details_text(self) -> str:
        """The rest of the message without facet values and negated words."""
        text = self.work
        for start, end in sorted(self.spans, reverse=True):
            text = text[:start] + " " + text[end:]
        text = self.vocab.negated_detail.sub(" ", text)
        return self.vocab.negation_words.sub(" ", text)

    def has_content(self) -> bool:
        return self.has_change() or bool(self.references or self.show_more)

    def has_change(self) -> bool:
        return bool(self.must or self.avoid or self.allow or self.relative or self.price_min is not None
                    or self.price_max is not None)


def find_references(state: ParseState, context: ParseContext, taxonomy: Taxonomy) -> None:
    """Ranks of shown results ("the second one", "#3", "the first two") and what the shopper does with them."""
    refs, reactions = state.vocab.references, state.vocab.reactions
    found: list[tuple[int, int, list[int]]] = []
    for pattern, kind in refs.patterns:
        for m in pattern.finditer(state.work):
            if any(s < m.end() and m.start() < e for s, e, _ in found):
                continue
            end = m.end()
            if kind != "first_n":
                tail = taxonomy.find_mentions(state.work[end:end + 30], facets=("category",))
                if tail and not state.work[end:end + tail[0].start].strip():
                    end += tail[0].end
            found.append((m.start(), end, _ranks(m, kind, state.vocab)))
    found.sort()
    for start, end, ranks in found:
        before, after = state.work[max(0, start - 40):start], state.work[end:end + 40]
        state.references.extend(r for r in ranks if r not in state.references)
        if reactions.similar_before.search(before):
            state.similar.extend(ranks)
        elif reactions.dislike_before.search(before) or reactions.dislike_after.search(after):
            state.dislike.extend(ranks)
        elif reactions.like_before.search(before) or reactions.like_after.search(after):
            state.like.extend(ranks)
    for start, end, _ in sorted(found, reverse=True):
        state.work = state.work[:start] + " " + state.work[end:]
    state.change_text = state.work
    if not found and refs.pronouns.search(state.work):
        state.this = True
        if not context.has_image and refs.like_this.search(state.work):
            state.similar.append(0)


def find_prices(state: ParseState) -> None:
    """"nothing over 50" caps, "around 40" is ±20%, then the shared price rules ("under 30", "20-40")."""
    capped = state.vocab.not_over.search(state.work)
    if capped:
        state.price_max = float(capped.group(1).replace(",", "."))
        state.work = state.work[:capped.start()] + " " + state.work[capped.end():]
    around = state.vocab.around.search(state.work)
    if around:
        value = float(around.group(1).replace(",", "."))
        state.price_min, state.price_max = round(value * 0.8, 2), round(value * 1.2, 2)
        state.work = state.work[:around.start()] + " " + state.work[around.end():]
    low, high, rest = parse_price(state.work)
    if low is not None or high is not None:
        state.price_min = low if low is not None else state.price_min
        state.price_max = high if high is not None else state.price_max
        state.work = rest


def find_relative(state: ParseState) -> None:
    """Relative feedback (cheaper, longer, more formal...) unless negated ("doesn't need to be cheaper")."""
    vocab = state.vocab
    for name, pattern in vocab.relative.items():
        match = pattern.search(state.work)
        if match and not vocab.relative_negated.search(state.work[max(0, match.start() - 25):match.start()]):
            state.relative.append(name)
    for name, pattern in vocab.relative.items():
        state.work = pattern.sub(" ", state.work) if name in state.relative else state.work
    if "cheaper" in state.relative and "pricier" in state.relative:
        state.relative.remove("pricier")


def find_show_more(state: ParseState) -> None:
    state.show_more = bool(state.vocab.show_more.search(state.work))
    if state.show_more:
        state.work = state.vocab.show_more.sub(" ", state.work)


def find_facets(state: ParseState, taxonomy: Taxonomy) -> None:
    """Facet values and their scope: allowed again ("black is fine"), relaxed ("doesn't have to be black"),
    avoided (a negation scope reaching a few words ahead: "isn't black", "i dont want anything black"), carried
    along an or-list ("isn't black or blue"), or wanted; a correction or preference verb replaces an earlier value
    of the same facet ("a red, no wait, a blue dress")."""
    vocab, text = state.vocab, state.work
    previous: tuple[Mention, str] | None = None
    mentions = _mentions(text, taxonomy, vocab)
    spans = [(m.start, m.end) for m in mentions]
    wanted: dict[str, int] = {}
    for mention in mentions:
        before = text[max(0, mention.start - 40):mention.start]
        after = text[mention.end:mention.end + 30]
        if vocab.allow_before.search(before[-30:]) or vocab.allow_after.search(after):
            kind = "allow"
        elif vocab.relax_before.search(before):
            kind = "relax"
        elif vocab.negations.search(before[-30:]) or (
                mention.value not in state.must.get(mention.facet, []) and in_negation_scope(text, mention.start,
                                                                                               spans)):
            kind = "avoid"
        elif previous and previous[1] in ("avoid", "allow") and _continues_list(vocab, text[previous[0].end:mention.start],
                                                                                 after):
            kind = previous[1]
        else:
            kind = "must"
        state.spans.append((mention.start, mention.end))
        previous = (mention, kind)
        if kind == "relax":
            continue
        target = {"must": state.must, "avoid": state.avoid, "allow": state.allow}[kind]
        values = target.setdefault(mention.facet, [])
        if kind == "must" and mention.facet in wanted and vocab.override.search(text[wanted[mention.facet]:mention.start]):
            values.clear()
        if mention.value not in values:
            values.append(mention.value)
        if kind == "must":
            wanted[mention.facet] = mention.end
    for facet, values in state.allow.items():
        if facet in state.must:
            state.must[facet] = [v for v in state.must[facet] if v not in values]
    for facet, values in state.avoid.items():
        if facet in state.must:
            state.must[facet] = [v for v in state.must[facet] if v not in values]
    state.must = {f: v for f, v in state.must.items() if v}
    if state.must.get("category") and "group" in state.must:
        del state.must["group"]


def _continues_list(vocab: Vocabulary, between: str, after: str) -> bool:
    """Whether a value continues the list before it ("not black or navy"), not a positive turn ("not black,
    white ones")."""
    if not vocab.list_join.fullmatch(between):
        return False
    return not (vocab.positive_after.match(after) and not vocab.conjunction.search(between))


def _mentions(text: str, taxonomy: Taxonomy, vocab: Vocabulary) -> list[Mention]:
    """Taxonomy values, then the parser's own words where nothing longer was found: extra synonyms, words naming
    several categories ("knitwear"), group words ("swimwear"), and ages ("a 5 year old" is the kids department)."""
    mentions = list(taxonomy.find_mentions(text))
    taken = [(m.start, m.end) for m in mentions]

    def free(start: int, end: int) -> bool:
        return not any(s < end and start < e for s, e in taken)

    for m in vocab.extra_pattern.finditer(text):
        if free(m.start(), m.end()):
            word = m.group(0)
            facet = next(f for f, words in vocab.extra.items() if word in words)
            mentions.append(Mention(facet, vocab.extra[facet][word], m.start(), m.end(), word))
            taken.append((m.start(), m.end()))
    for m in vocab.category_word_pattern.finditer(text):
        if free(m.start(), m.end()):
            mentions += [Mention("category", v, m.start(), m.end(), m.group(0)) for v in vocab.category_words[m.group(0)]]
            taken.append((m.start(), m.end()))
    for m in vocab.group_pattern.finditer(text):
        if free(m.start(), m.end()):
            mentions.append(Mention("group", vocab.groups[m.group(0)], m.start(), m.end(), m.group(0)))
            taken.append((m.start(), m.end()))
    for m in vocab.ages.finditer(text):
        age = int(m.group("n") or m.group("m"))
        if free(m.start(), m.end()) and (age <= vocab.kids_max_age or "month" in m.group(0)):
            mentions.append(Mention("gender", vocab.age_department, m.start(), m.end(), m.group(0)))
    return sorted(mentions, key=lambda m: m.start)


def _ranks(match: re.Match[str], kind: str, vocab: Vocabulary) -> list[int]:
    refs = vocab.references
    text = match.group(0)
    if kind == "first_n":
        n = max(v for k, v in refs.first_n.items() if re.search(rf"\b{re.escape(k)}\b", text))
        return list(range(1, n + 1)) if "last" not in text else list(range(-n, 0))
    if kind == "ordinal":
        return [refs.ordinals[match.group("o")]]
    if kind == "number":
        return [int(match.group("n"))]
    if kind == "word":
        return [refs.number_words[match.group("w")]]
    return [1]


def normalise(text: str) -> str:
    text = text.lower().replace("’", "'").replace("‘", "'").replace("“", '"').replace("”", '"')
    return re.sub(r"\s+", " ", text).strip()


def tidy(text: str, vocab: Vocabulary) -> str:
    """The change words of a message, without a leading "more like ..." / "but"."""
    text = vocab.tidy_similar.sub(" ", text)
    text = vocab.tidy_lead.sub(" ", text)
    return re.sub(r"\s+([,.!?])", r"\1", re.sub(r"\s+", " ", text)).strip(" ,")


def content(work: str, vocab: Vocabulary) -> str:
    """The descriptive words of a message (the text the memory cascade embeds)."""
    text = re.sub(r"[^\w\s'&/-]", " ", work)
    text = vocab.filler.sub(" ", text)
    return re.sub(r"\s+", " ", text).strip()
