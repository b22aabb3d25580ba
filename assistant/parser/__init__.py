"""Read one shopper message into a typed ``TurnIntent``: what they want done, and what changed.

Deterministic on purpose, so the offline assistant is predictable and testable. By job:
``vocabulary`` compiles the prompt data (``prompts/intents.yaml``, ``prompts/vocabulary.yaml``), ``extract`` finds
references, prices, relative feedback and facet scopes, ``rules`` decides the intent as an explicit ordered tuple,
``classify`` is the embedding fallback for messages no rule decides, and ``pipeline`` runs them in that order.
An LLM router produces the same ``TurnIntent`` type.
"""

from atelier.assistant.parser.classify import EMBEDDING_FLOOR
from atelier.assistant.parser.pipeline import Parser, TurnParser, build_parser, get_parser, parse_turn
from atelier.assistant.parser.rules import RULES, asks_listing_property
from atelier.assistant.parser.vocabulary import Vocabulary, get_vocabulary
from atelier.memory.intent import INTENTS, IntentName, ParseContext, TurnIntent

__all__ = ["EMBEDDING_FLOOR", "INTENTS", "RULES", "IntentName", "ParseContext", "Parser", "TurnIntent", "TurnParser",
           "Vocabulary", "asks_listing_property", "build_parser", "get_parser", "get_vocabulary", "parse_turn"]
