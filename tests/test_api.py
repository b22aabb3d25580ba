"""The HTTP API on the real assistant and the H&M sample store: sessions and tokens, SSE turns, uploads and
their limits, feedback, products and photos, rate limit, CORS and the error shape."""

from __future__ import annotations

import hashlib
import json
import sqlite3

import pytest
from fastapi.testclient import TestClient
from ui_fixtures import (BLACK_DRESS_ID, FakeAssistant, api, api_app, fake_products, hm_photo, real_assistant)  # noqa: F401


def parse_sse(body: str) -> list[tuple[str, dict]]:
    events = []
    for block in body.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        events.append((lines["event"], json.loads(lines["data"])))
    return events


def start(client: TestClient) -> tuple[str, dict[str, str]]:
    created = client.post("/v1/sessions")
    assert created.status_code == 201, created.text
    body = created.json()
    return body["session_id"], {"Authorization": f"Bearer {body['token']}"}


def say(client: TestClient, session_id: str, headers: dict[str, str], **request) -> list[tuple[str, dict]]:
    response = client.post(f"/v1/sessions/{session_id}/messages", headers=headers, **request)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/event-stream")
    return parse_sse(response.text)


def assert_error(response, status: int, code: str) -> str:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code and error["message"]
    return error["message"]


def test_session_token_is_stored_hashed(api, hm_settings):
    created = api.post("/v1/sessions").json()
    assert len(created["token"]) >= 32
    with sqlite3.connect(hm_settings.db_path) as db:
        stored = db.execute("SELECT token_sha256 FROM ui_session_tokens WHERE session_id = ?",
                            (created["session_id"],)).fetchone()[0]
    assert stored == hashlib.sha256(created["token"].encode()).hexdigest()
    assert created["token"] not in stored


def test_session_needs_its_own_token(api):
    session_id, headers = start(api)
    other_id, other_headers = start(api)
    url = f"/v1/sessions/{session_id}"
    assert_error(api.get(url), 401, "unauthorized")
    assert_error(api.get(url, headers={"Authorization": "Bearer wrong"}), 403, "forbidden")
    assert_error(api.get(url, headers=other_headers), 403, "forbidden")
    assert_error(api.post(url + "/messages", json={"text": "hi"}), 401, "unauthorized")
    assert api.get(url, headers=headers).status_code == 200


def test_unknown_session_is_404(api):
    _, headers = start(api)
    assert_error(api.get("/v1/sessions/no-such-session", headers=headers), 404, "not_found")
    assert_error(api.post("/v1/sessions/no-such-session/messages", json={"text": "hi"}, headers=headers),
                 404, "not_found")


def test_black_dress_streams_products_then_text_then_done(api, hm_sample):
    session_id, headers = start(api)
    events = say(api, session_id, headers, json={"text": "black dress"})
    names = [name for name, _ in events]
    assert names[-1] == "done" and names.count("done") == 1
    assert "error" not in names
    first_products, first_text = names.index("products"), names.index("text_delta")
    assert first_products < first_text < names.index("done")
    assert all(name == data["type"] for name, data in events)
    results = events[first_products][1]["results"]
    assert len(results) >= 3
    for result in results:
        assert result["id"] in hm_sample
        assert result["colour"] == "black" and result["category"] == "dress", result
        assert result["image_url"] == f"/v1/products/{result['id']}/image"
        assert "image_path" not in result
    text = "".join(data["text"] for name, data in events if name == "text_delta")
    assert text.strip()
    assert events[-1][1]["session_id"] == session_id

    view = api.get(f"/v1/sessions/{session_id}", headers=headers).json()
    assert view["session_id"] == session_id
    assert "black dress" in json.dumps(view["history"])
    assert view["memory"]


def test_multipart_photo_upload_finds_products(api, hm_sample):
    session_id, headers = start(api)
    photo = hm_photo(BLACK_DRESS_ID)
    with photo.open("rb") as handle:
        events = say(api, session_id, headers, data={"text": "something like this"},
                     files={"image": (photo.name, handle, "image/jpeg")})
    names = [name for name, _ in events]
    assert "error" not in names and names[-1] == "done"
    results = [r for name, data in events if name == "products" for r in data["results"]]
    assert results and all(r["id"] in hm_sample for r in results)
    assert sum(r["category"] == "dress" for r in results) >= len(results) / 2, results
    memory_event = next(data for name, data in events if name == "memory")
    assert any(a["kind"] == "image" for a in memory_event["memory"]["anchors"])
    view = api.get(f"/v1/sessions/{session_id}", headers=headers).json()
    assert "image_path" not in json.dumps(memory_event) and "image_path" not in json.dumps(view["memory"])
    history = view["history"]
    assert history[-1]["had_image"] is True
    assert not {"image", "memory", "tool_calls"} & set(history[-1])


def test_photo_only_upload_is_accepted(api):
    session_id, headers = start(api)
    photo = hm_photo(BLACK_DRESS_ID)
    events = say(api, session_id, headers, files={"image": (photo.name, photo.read_bytes(), "image/jpeg")})
    assert [n for n, _ in events][-1] == "done"


@pytest.mark.parametrize("upload", [
    ("notes.txt", b"just some text", "text/plain"),
    ("fake.jpg", b"this is not a jpeg at all", "image/jpeg"),
    ("doc.pdf", b"%PDF-1.4 not an image", "application/pdf"),
])
def test_wrong_file_type_is_415(api, upload):
    session_id, headers = start(api)
    response = api.post(f"/v1/sessions/{session_id}/messages", headers=headers, data={"text": "like this"},
                        files={"image": upload})
    assert_error(response, 415, "unsupported_media_type")


def test_wrong_body_type_is_415(api):
    session_id, headers = start(api)
    response = api.post(f"/v1/sessions/{session_id}/messages", headers={**headers, "Content-Type": "text/plain"},
                        content=b"black dress")
    assert_error(response, 415, "unsupported_media_type")


def test_oversize_upload_is_413(hm_settings, real_assistant):
    from atelier.ui.api import create_app

    small = hm_settings.model_copy(update={"max_upload_bytes": 4_000})
    photo = hm_photo(BLACK_DRESS_ID)
    assert photo.stat().st_size > 4_000
    with TestClient(create_app(assistant=real_assistant, settings=small)) as client:
        session_id, headers = start(client)
        response = client.post(f"/v1/sessions/{session_id}/messages", headers=headers,
                               files={"image": (photo.name, photo.read_bytes(), "image/jpeg")})
        message = assert_error(response, 413, "payload_too_large")
        assert "MB" in message
        huge = client.post(f"/v1/sessions/{session_id}/messages", headers=headers,
                           files={"image": ("big.jpg", b"\xff" * 200_000, "image/jpeg")})
        assert_error(huge, 413, "payload_too_large")


def test_empty_or_too_long_message_is_422(api):
    session_id, headers = start(api)
    url = f"/v1/sessions/{session_id}/messages"
    assert_error(api.post(url, headers=headers, json={"text": "  "}), 422, "invalid_request")
    assert_error(api.post(url, headers=headers, json={"text": "x" * 5000}), 422, "invalid_request")


def test_rate_limit_is_429(hm_settings, real_assistant, tmp_path):
    from atelier.ui.api import create_app

    limited = hm_settings.model_copy(update={"rate_limit_per_minute": 3, "db": str(tmp_path / "limits.db")})
    with TestClient(create_app(assistant=real_assistant, settings=limited)) as client:
        statuses = [client.post("/v1/sessions").status_code for _ in range(3)]
        assert statuses == [201, 201, 201]
        blocked = client.post("/v1/sessions")
        assert_error(blocked, 429, "rate_limited")
        assert int(blocked.headers["retry-after"]) >= 1
        assert client.get("/healthz").status_code == 200


def test_product_and_photo_endpoints(api, hm_settings):
    product = api.get(f"/v1/products/{BLACK_DRESS_ID}").json()
    assert product["id"] == BLACK_DRESS_ID and product["colour"] == "black" and product["category"] == "dress"
    assert product["image_url"] == f"/v1/products/{BLACK_DRESS_ID}/image"
    assert "image_path" not in product
    photo = api.get(product["image_url"])
    assert photo.status_code == 200 and photo.headers["content-type"] == "image/jpeg"
    assert photo.content == hm_photo(BLACK_DRESS_ID).read_bytes()
    assert_error(api.get("/v1/products/0000000000"), 404, "not_found")
    assert_error(api.get("/v1/products/0000000000/image"), 404, "not_found")
    for probe in ("..%2F..%2Fetc%2Fpasswd", "%2Fetc%2Fpasswd", "..", "a b"):
        assert api.get(f"/v1/products/{probe}/image").status_code == 404


def test_feedback_updates_memory(api):
    session_id, headers = start(api)
    events = say(api, session_id, headers, json={"text": "black dress"})
    ids = [r["id"] for name, data in events if name == "products" for r in data["results"]]
    url = f"/v1/sessions/{session_id}/feedback"
    liked = api.post(url, headers=headers, json={"product_id": ids[0], "kind": "like"})
    assert liked.status_code == 200, liked.text
    assert ids[0] in json.dumps(liked.json()["memory"])
    disliked = api.post(url, headers=headers, json={"product_id": ids[1], "kind": "dislike"})
    assert ids[1] in json.dumps(disliked.json()["memory"])
    memory = api.get(f"/v1/sessions/{session_id}", headers=headers).json()["memory"]
    assert ids[0] in json.dumps(memory) and ids[1] in json.dumps(memory)
    more = api.post(url, headers=headers, json={"product_id": ids[2], "kind": "more_like_this"}).json()
    fresh = [r for event in more["events"] if event["type"] == "products" for r in event["results"]]
    assert fresh and ids[2] not in [r["id"] for r in fresh] and ids[1] not in [r["id"] for r in fresh]
    assert all(r["image_url"].endswith(f"/{r['id']}/image") for r in fresh)
    assert [e["type"] for e in more["events"]][-1] == "done"
    assert_error(api.post(url, headers=headers, json={"product_id": ids[0], "kind": "love"}), 422, "invalid_request")
    assert_error(api.post(url, headers=headers, json={"product_id": "0000000000", "kind": "like"}), 404, "not_found")
    assert_error(api.post(url, json={"product_id": ids[0], "kind": "like"}), 401, "unauthorized")


def test_forget_a_memory_item_then_search_without_it(api, hm_sample):
    session_id, headers = start(api)
    events = say(api, session_id, headers, json={"text": "black dress"})
    first = [r for name, data in events if name == "products" for r in data["results"]]
    assert first and all(r["colour"] == "black" for r in first)
    url = f"/v1/sessions/{session_id}/memory"
    forgot = api.delete(f"{url}/must", params={"facet": "colour", "value": "black"}, headers=headers)
    assert forgot.status_code == 200, forgot.text
    memory = forgot.json()["memory"]
    assert "colour" not in memory["constraints"]["must"] and memory["constraints"]["must"]["category"] == ["dress"]
    assert api.get(f"/v1/sessions/{session_id}", headers=headers).json()["memory"] == memory
    history = api.get(f"/v1/sessions/{session_id}", headers=headers).json()["history"]
    assert [h["kind"] for h in history] == ["message", "forget"]

    events = say(api, session_id, headers, json={"text": "show me more"})
    again = [r for name, data in events if name == "products" for r in data["results"]]
    assert again and all(r["id"] in hm_sample and r["category"] == "dress" for r in again)
    assert {r["colour"] for r in again} - {"black"}, [r["colour"] for r in again]

    assert_error(api.delete(f"{url}/must", params={"facet": "colour", "value": "black"}, headers=headers),
                 404, "not_in_memory")
    assert_error(api.delete(f"{url}/price_max", headers=headers), 404, "not_in_memory")
    assert_error(api.delete(f"{url}/colour", params={"value": "black"}, headers=headers), 422, "invalid_request")
    assert_error(api.delete(f"{url}/must", params={"value": "black"}, headers=headers), 422, "invalid_request")
    assert_error(api.delete("/v1/sessions/no-such-session/memory/must", params={"facet": "colour", "value": "x"},
                            headers=headers), 404, "not_found")
    assert_error(api.delete(f"{url}/must", params={"facet": "category", "value": "dress"}), 401, "unauthorized")


def test_cors_allow_list(hm_settings, real_assistant):
    from atelier.ui.api import create_app

    shop = hm_settings.model_copy(update={"cors_origins": ["https://shop.example"]})
    with TestClient(create_app(assistant=real_assistant, settings=shop)) as client:
        preflight = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization"}
        allowed = client.options("/v1/sessions", headers={"Origin": "https://shop.example", **preflight})
        assert allowed.headers["access-control-allow-origin"] == "https://shop.example"
        delete = client.options("/v1/sessions/x/memory/must", headers={
            "Origin": "https://shop.example", **preflight, "Access-Control-Request-Method": "DELETE"})
        assert delete.status_code == 200 and "DELETE" in delete.headers["access-control-allow-methods"]
        denied = client.options("/v1/sessions", headers={"Origin": "https://evil.example", **preflight})
        assert "access-control-allow-origin" not in denied.headers


def test_openapi_health_widget_and_demo(api):
    paths = api.get("/openapi.json").json()["paths"]
    for path in ("/v1/sessions", "/v1/sessions/{session_id}", "/v1/sessions/{session_id}/messages",
                 "/v1/sessions/{session_id}/feedback", "/v1/sessions/{session_id}/memory/{kind}",
                 "/v1/products/{product_id}",
                 "/v1/products/{product_id}/image", "/healthz"):
        assert path in paths, path
    body = paths["/v1/sessions/{session_id}/messages"]["post"]["requestBody"]["content"]
    assert {"application/json", "multipart/form-data"} <= set(body)
    assert api.get("/healthz").json() == {"status": "ok"}
    widget = api.get("/widget.js")
    assert widget.headers["content-type"].startswith("application/javascript")
    assert "attachShadow" in widget.text
    assert '<script src="/widget.js"></script>' in api.get("/demo").text
    assert_error(api.get("/nowhere"), 404, "not_found")


def test_a_crash_mid_turn_ends_with_error_then_done(hm_settings, fake_products):
    from atelier.ui.api import create_app

    catalog = {p.id: p for p in fake_products}.get
    with TestClient(create_app(assistant=FakeAssistant(fake_products, fail_after=1), settings=hm_settings,
                               catalog=catalog)) as client:
        session_id, headers = start(client)
        events = say(client, session_id, headers, json={"text": "black dress"})
    names = [name for name, _ in events]
    assert names == ["status", "products", "error", "done"]
    assert "boom" not in events[2][1]["message"] and "Traceback" not in events[2][1]["message"]
