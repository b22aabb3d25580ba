"""Atelier in the browser: `atelier ui` (or `make demo`) runs this with Streamlit.

Chat with streamed replies and photo upload, product cards with like / dislike / more like this /
complete the look / ask about this, and a sidebar with the session memory as removable chips, a new-chat
button and past sessions. The state logic lives in ``ui.chat_state``; this module only draws it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator

import streamlit as st

from atelier.assistant.runtime import Runtime
from atelier.memory.update import NotRemembered
from atelier.tools.images import ImageError, load_image
from atelier.tools.schema import SearchResult
from atelier.tools.settings import apply_offline_defaults, get_settings
from atelier.ui import backend
from atelier.ui.chat_state import ChatMessage, Chip, Transcript, memory_chips, run_turn, short_why
from atelier.ui.render import plain_markdown

log = logging.getLogger("atelier.ui")
PHOTO_TYPES = ["jpg", "jpeg", "png", "webp", "gif", "bmp"]
CARDS_PER_ROW = 4
FAILURE = "Sorry, something went wrong while answering. Please try again."


@st.cache_resource(show_spinner="Loading the catalog…")
def load_runtime(settings_key: str) -> Runtime:
    """One runtime (engines) per configuration, shared by every browser tab of this server."""
    return Runtime(get_settings())


@st.cache_resource(show_spinner="Loading the assistant…")
def load_assistant(settings_key: str) -> backend.AssistantLike:
    """One assistant per configuration, over that configuration's runtime."""
    return backend.build_assistant(runtime=load_runtime(settings_key))


def runtime() -> Runtime:
    return load_runtime(get_settings().model_dump_json())


def assistant() -> backend.AssistantLike:
    return load_assistant(get_settings().model_dump_json())


def state() -> Transcript:
    if "transcript" not in st.session_state:
        st.session_state.transcript = Transcript()
        st.session_state.pending = None
        st.session_state.reactions = {}
        st.session_state.asking = None
    return st.session_state.transcript


def session_id() -> str:
    transcript = state()
    if transcript.session_id is None:
        transcript.session_id = assistant().new_session()
    return transcript.session_id


def failure_message(exc: Exception) -> str:
    log.exception("assistant turn failed", exc_info=exc)
    return FAILURE


# Callbacks run before the script reruns; they only record what to do or make quick calls.

def queue(action: str, product: SearchResult | None = None, text: str = "", image: bytes | None = None) -> None:
    st.session_state.pending = {"action": action, "product": product, "text": text, "image": image}


def react(product: SearchResult, kind: str) -> None:
    try:
        view = backend.give_feedback(assistant(), session_id(), product.id, kind)
        state().memory = view.memory
        st.session_state.reactions[product.id] = kind
        st.toast(f"{'Liked' if kind == 'like' else 'Noted: not for you'} — {product.title}")
    except Exception as exc:
        log.exception("feedback failed")
        st.session_state.flash = f"Could not save that: {exc.__class__.__name__}. Please try again."


def ask_about(product: SearchResult | None) -> None:
    st.session_state.asking = product


def remove_chip(chip: Chip) -> None:
    transcript = state()
    try:
        transcript.memory = backend.forget(assistant(), session_id(), chip)
    except NotRemembered:  # already gone (a second click, another tab): show the memory as it is
        transcript.memory = backend.session_view(assistant(), session_id()).memory
    except Exception:
        log.exception("removing a constraint failed")
        st.session_state.flash = "Could not update the memory. Please try again."


def new_chat() -> None:
    st.session_state.transcript = Transcript()
    st.session_state.pending = None
    st.session_state.reactions = {}
    st.session_state.asking = None


def open_session(session: str) -> None:
    try:
        st.session_state.transcript = backend.load_transcript(assistant(), session, runtime())
        st.session_state.reactions = {}
        st.session_state.asking = None
    except Exception:
        log.exception("opening a session failed")
        st.session_state.flash = "Could not open that conversation."


# Drawing.

def draw_card(message_index: int, product: SearchResult, actions: bool) -> None:
    key = f"{message_index}-{product.id}"
    with st.container(border=True, key=f"card-{key}"):
        if product.image_path:
            try:
                st.image(product.image_path, width="stretch", alt=product.title)
            except Exception:
                st.caption("(photo unavailable)")
        price = "" if product.price is None else f"{product.price:.2f} · "
        st.markdown(f"**{plain_markdown(product.title)}**  \n"
                    f"{plain_markdown(f'{price}{product.colour} · {product.category}')}")
        if product.why:
            st.caption(short_why(product.why), help=product.why)
        if not actions:
            return
        reaction = st.session_state.reactions.get(product.id)
        with st.container(horizontal=True, gap="small"):
            st.button("Liked" if reaction == "like" else "Like", key=f"like-{key}", icon=":material/favorite:",
                      type="primary" if reaction == "like" else "secondary", on_click=react, args=(product, "like"),
                      help=f"Like {product.title}")
            st.button("Pass", key=f"dislike-{key}", icon=":material/thumb_down:",
                      type="primary" if reaction == "dislike" else "secondary", on_click=react,
                      args=(product, "dislike"), help="Not for me: never show it again in this chat")
            st.button("More like this", key=f"more-{key}", icon=":material/auto_awesome:", on_click=queue,
                      args=("more_like_this", product))
            st.button("Complete the look", key=f"look-{key}", icon=":material/checkroom:", on_click=queue,
                      args=("complete_look", product))
            st.button("Ask about this", key=f"ask-{key}", icon=":material/help:", on_click=ask_about,
                      args=(product,))


def draw_products(message_index: int, message: ChatMessage, actions: bool = True) -> None:
    seen: set[str] = set()
    for group in message.groups:
        results = [r for r in group.results if r.id not in seen]
        seen.update(r.id for r in results)
        if not results:
            continue
        if group.title or group.slot:
            st.markdown(f"##### {plain_markdown(group.title or group.slot)}")
        for start in range(0, len(results), CARDS_PER_ROW):
            columns = st.columns(CARDS_PER_ROW)
            for column, product in zip(columns, results[start:start + CARDS_PER_ROW]):
                with column:
                    draw_card(message_index, product, actions)


def draw_message(index: int, message: ChatMessage) -> None:
    with st.chat_message(message.role):
        if message.image:
            st.image(message.image, width=160, alt="Your photo")
        if message.text:
            st.markdown(plain_markdown(message.text))
        if message.error:
            st.error(message.error)
        draw_products(index, message)


def escaped(deltas: Iterable[str], raw: list[str]) -> Iterator[str]:
    """The deltas as safe markdown for the screen; the words as written go to ``raw`` for the transcript."""
    for delta in deltas:
        raw.append(delta)
        yield plain_markdown(delta)


def run_pending() -> None:
    """Carry out the queued message or card action, streaming the reply into a new chat message."""
    pending, st.session_state.pending = st.session_state.pending, None
    transcript = state()
    product: SearchResult | None = pending["product"]
    text = {"more_like_this": f"More like this: {product.title}" if product else "",
            "complete_look": f"Complete the look with: {product.title}" if product else ""}.get(
        pending["action"], pending["text"])
    user = transcript.add_user(text, pending["image"])
    draw_message(len(transcript.messages) - 1, user)
    reply = transcript.add_assistant()
    with st.chat_message("assistant"):
        try:
            sid = session_id()
            image = load_image(pending["image"]) if pending["image"] else None
            events = backend.act(assistant(), sid, pending["action"], text=pending["text"],
                                 product_id=product.id if product else None, image=image)
            raw: list[str] = []
            with st.spinner("Thinking…"):
                st.write_stream(escaped(run_turn(transcript, reply, events, failure_message), raw))
            if not reply.text:
                reply.text = "".join(raw)
        except ImageError as exc:
            reply.error = str(exc)
        except Exception as exc:
            reply.error = failure_message(exc)
        if reply.error:
            st.error(reply.error)
        draw_products(len(transcript.messages) - 1, reply)


def draw_sidebar() -> None:
    transcript = state()
    with st.sidebar:
        st.button("New chat", icon=":material/add_comment:", on_click=new_chat, width="stretch", key="new-chat")
        st.subheader("What I remember")
        chips = memory_chips(transcript.memory)
        if not chips:
            st.caption("No constraints yet. Ask for something like “black dress under 40”.")
        for chip in chips:
            st.button(f"{chip.label}  ✕", key=f"chip-{chip.key}", help="Remove this constraint",
                      on_click=remove_chip, args=(chip,))
        liked, disliked = transcript.memory.get("liked") or [], transcript.memory.get("disliked") or []
        if liked or disliked:
            st.caption(f"Liked {len(liked)} · not for you {len(disliked)}")
        st.subheader("Past chats")
        try:
            sessions = backend.recent_sessions(assistant())
        except Exception:
            log.exception("listing sessions failed")
            sessions = []
        for item in sessions[:10]:
            if item["turns"] and item["id"] != transcript.session_id:
                st.button(f"{item['title']}", key=f"session-{item['id']}", on_click=open_session,
                          args=(item["id"],), width="stretch", type="tertiary")


def read_chat_input() -> None:
    """Queue what the shopper submitted (a question about a card's product, or a message and photo)."""
    asking: SearchResult | None = st.session_state.asking
    placeholder = f"Ask about {asking.title}…" if asking else "Describe what you are looking for…"
    submitted = st.chat_input(placeholder, accept_file=True, file_type=PHOTO_TYPES, key="chat",
                              max_upload_size=max(1, get_settings().max_upload_bytes // 1_000_000))
    if submitted is None or st.session_state.pending is not None:
        return
    text = (submitted.text if hasattr(submitted, "text") else str(submitted)).strip()
    files = list(getattr(submitted, "files", []) or [])
    image = files[0].getvalue() if files else None
    if not (text or image):
        return
    if asking is not None and text:
        st.session_state.asking = None
        queue("ask", asking, text=text)
    else:
        queue("message", text=text, image=image)


def main() -> None:
    apply_offline_defaults()
    st.set_page_config(page_title="Atelier", page_icon=":material/checkroom:", layout="wide")
    transcript = state()
    read_chat_input()
    st.title("Atelier")
    st.caption("Your fashion shopping assistant. Describe what you want, or attach a photo.")
    if flash := st.session_state.pop("flash", None):
        st.error(flash)
    for index, message in enumerate(transcript.messages):
        draw_message(index, message)
    if st.session_state.pending is not None:
        run_pending()
    asking: SearchResult | None = st.session_state.asking
    if asking is not None:
        with st.container(key="asking"):
            st.info(f"Ask a question about **{asking.title}** below.")
            st.button("Cancel", key="asking-cancel", on_click=ask_about, args=(None,))
    draw_sidebar()


main()
