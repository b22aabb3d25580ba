"""The replay format and checker on the synthetic catalog: unmet expectations are reported readably, and an
exported session replays green."""

from __future__ import annotations

import yaml
from agent_fixtures import assistant  # noqa: F401  (fixture)

from atelier.assistant.replay import Conversation, format_report, run_conversation
from atelier.assistant.session_export import dump_yaml

CONVERSATION = """
name: red then blue shirts, a dislike, a click
turns:
  - say: a red shirt
    expect:
      intent: search
      tools: [search_products]
      memory: {must: {colour: [red], category: [shirt]}}
      results:
        - all: {colour: red, category: shirt}
        - count: {min: 3, max: 3}
  - say: actually blue, and I don't like the first one
    expect:
      intent: refine
      memory: {must: {colour: [blue], category: [shirt]}, disliked: ["@1.1"]}
      results:
        - all: {colour: blue}
        - excludes: ["@1.1"]
        - fraction: 0.6
          where: {price: {lt: "@1.max_price"}}
  - click: {like: 1}
    expect:
      memory: {liked: ["@2.1"]}
  - say: cheaper
    expect:
      memory: {price_max: {lt: "@2.1.price"}}
      results:
        - all: {price: {lt: "@2.1.price"}}
        - excludes: ["@1.1"]
      reply: {contains: [up to]}
"""


def test_a_passing_conversation(assistant):
    conversation = Conversation.model_validate(yaml.safe_load(CONVERSATION))
    result = run_conversation(conversation, assistant)
    assert result.passed, format_report([result])


def test_unmet_expectations_are_reported_with_the_offending_products(assistant):
    conversation = Conversation.model_validate({"name": "wrong", "turns": [
        {"say": "a red shirt", "expect": {"intent": "compare", "tools": ["find_similar"],
                                          "memory": {"must": {"colour": ["green"]}, "price_max": 10},
                                          "results": [{"all": {"colour": "blue"}}, {"includes": ["9999"]}],
                                          "reply": {"contains": ["purple"], "excludes": ["red"]}}}]})
    result = run_conversation(conversation, assistant)
    report = format_report([result])
    assert not result.passed and report.startswith("FAIL wrong")
    assert "intent: expected compare, got search" in report
    assert "tools: expected ['find_similar'], got ['search_products']" in report
    assert "memory.must: expected {'colour': ['green']}" in report
    assert "memory.price_max: expected 10, got None" in report
    assert "3/3 do not: #1 [" in report and "colour='red'" in report
    assert "9999" in report and "should contain 'purple'" in report and "should not contain 'red'" in report


def test_export_replays_green(assistant):
    sid = assistant.new_session()
    for message in ("a white dress", "not the second one", "for men instead"):
        list(assistant.turn(sid, message))
    shown = assistant.memory(sid)["shown"]
    assistant.feedback(sid, shown[0]["id"], "like")
    list(assistant.turn(sid, "cheaper"))
    exported = assistant.export(sid)
    assert [list(t)[0] for t in exported["turns"]] == ["say", "say", "say", "click", "say"]
    assert exported["turns"][3]["click"] == {"like": 1}
    again = Conversation.model_validate(yaml.safe_load(dump_yaml(exported)))
    result = run_conversation(again, assistant)
    assert result.passed, format_report([result])
