"""The ``atelier`` command line: ingest catalogs, search, chat, serve, train, benchmark.

Each sub-command is a thin wrapper over a typed function in ``tools/``, ``assistant/`` or ``ui/``;
``--json`` output keeps the field names other tools and checks rely on.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from atelier.tools.errors import AtelierError
from atelier.tools.settings import apply_offline_defaults, get_settings, override_settings

app = typer.Typer(no_args_is_help=True, add_completion=False,
                  help="Atelier: a conversational fashion shopping assistant over your product catalog.")


@app.callback()
def _entry() -> None:
    """Every command runs offline-first (hub look-ups fail fast) unless the user's environment says otherwise."""
    apply_offline_defaults()


StoreOption = Annotated[Optional[Path], typer.Option(help="Chroma store folder (default ATELIER_STORE).")]
JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]


def apply_store(store: Optional[Path]) -> None:
    """``--store DIR`` overrides ATELIER_STORE for this command."""
    if store is not None:
        override_settings(store=store)


def fail(message: str, code: int = 1) -> None:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code)


def print_json(value: object) -> None:
    sys.stdout.write(json.dumps(value, ensure_ascii=False, default=str) + "\n")


@app.command()
def ingest(
    path: Path = typer.Argument(..., help="Catalog folder or file."),
    format: str = typer.Option("auto", "--format", "-f", help="hm | fpi | generic | auto"),
    limit: Optional[int] = typer.Option(None, help="Ingest at most N rows."),
    store: StoreOption = None,
    mapping: Optional[Path] = typer.Option(None, help="YAML column mapping for --format generic."),
    map_: list[str] = typer.Option([], "--map", help="field=column mapping pair (generic), repeatable."),
    batch_size: int = typer.Option(64, help="Items embedded per batch."),
    predict: bool = typer.Option(True, "--predict/--no-predict",
                                 help="Predict attributes the catalog lacks from the photos."),
    if_empty: bool = typer.Option(False, "--if-empty", help="Do nothing when the store already has products."),
    as_json: JsonFlag = False,
) -> None:
    """Embed a catalog's product text and photos into the store (resumable, skips unchanged items)."""
    from atelier.tools.catalogs import CatalogOptions, detect_format, load_mapping
    from atelier.tools.ingest import ingest as run_ingest

    apply_store(store)
    if not path.exists():
        fail(f"catalog not found: {path}")
    if if_empty:
        from atelier.tools.store import open_store

        count = open_store(create=True).count()
        if count:
            typer.echo(f"store {get_settings().store_path} already holds {count} products; skipping ingestion")
            return
    fmt = detect_format(path) if format == "auto" else format
    if fmt == "generic" and path.is_dir():
        fail("--format generic needs a CSV or JSONL file, not a folder")
    try:
        options = CatalogOptions(mapping=load_mapping(mapping, map_))
        report = run_ingest(path, fmt, limit=limit, batch_size=batch_size, options=options,
                            progress=not as_json, predict_missing=predict)
    except (ValueError, RuntimeError) as exc:
        fail(str(exc))
    if as_json:
        print_json(report.model_dump())
    else:
        typer.echo(f"ingested {report.added} new or changed, skipped {report.skipped_unchanged} unchanged, "
                   f"rejected {report.rejected} of {report.seen} rows in {report.seconds:.0f}s "
                   f"({report.items_per_second} items/s); store now holds {report.store_count} products")
        if report.predicted:
            typer.echo(f"predicted missing attributes from photos for {report.predicted} products")
        if report.rejected:
            typer.echo(f"rejects with reasons: {report.rejects_file} {report.reject_reasons}")


@app.command()
def search(
    query: str = typer.Argument(..., help='e.g. "black dress under 40"'),
    k: int = typer.Option(10, "-k", help="Number of results."),
    store: StoreOption = None,
    category: list[str] = typer.Option([], help="Filter: category (repeatable)."),
    group: list[str] = typer.Option([], help="Filter: group / outfit slot."),
    colour: list[str] = typer.Option([], help="Filter: colour family."),
    pattern: list[str] = typer.Option([], help="Filter: pattern."),
    gender: list[str] = typer.Option([], help="Filter: women | men | kids | unisex."),
    price_min: Optional[float] = typer.Option(None, help="Minimum price."),
    price_max: Optional[float] = typer.Option(None, help="Maximum price."),
    no_parse: bool = typer.Option(False, help="Do not read filters from the query text."),
    as_json: JsonFlag = False,
) -> None:
    """Hybrid product search with filters."""
    from atelier.assistant.runtime import Runtime
    from atelier.tools.query_parser import SearchFilters

    apply_store(store)
    must = {f: v for f, v in dict(category=category, group=group, colour=colour, pattern=pattern,
                                   gender=gender).items() if v}
    filters = SearchFilters(must=must, price_min=price_min, price_max=price_max)
    try:
        results = Runtime().search.search(query, filters, k, parse=not no_parse)
    except (ValueError, RuntimeError) as exc:
        fail(str(exc))
    if as_json:
        print_json({"results": [r.model_dump() for r in results]})
        return
    if not results:
        typer.echo("Nothing in the catalog matches that well enough.")
    for rank, r in enumerate(results, start=1):
        price = "" if r.price is None else f"  {r.price:.2f}"
        typer.echo(f"{rank:2d}. [{r.id}] {r.title} — {r.colour} {r.pattern} {r.category} ({r.gender}){price}\n"
                   f"    {r.why}")


@app.command("config")
def show_config() -> None:
    """Print the active settings (ATELIER_* environment variables)."""
    print_json(get_settings().model_dump(mode="json"))


@app.command("serve")
def serve(
    host: str = typer.Option("127.0.0.1", help="Address to listen on."),
    port: int = typer.Option(8000, help="Port to listen on."),
    store: StoreOption = None,
    workers: int = typer.Option(1, min=1, help="Processes to serve with (each loads the models; all share "
                                               "ATELIER_DB, the store and the uploads folder)."),
    global_lock: bool = typer.Option(False, "--global-lock",
                                     help="One turn at a time per process (the old behaviour; a baseline)."),
) -> None:
    """Run the HTTP API (SSE chat, products, /widget.js and the /demo page) with uvicorn.

    uvicorn gets the app factory, not an app, so each of ``--workers`` builds its own from the environment:
    command-line choices are passed on as ATELIER_* variables. The store and the sessions database are checked
    first: serving refuses to start, with the setting to fix, when either is unusable. Forwarded headers are
    believed only from ATELIER_TRUSTED_PROXIES."""
    import os

    import uvicorn

    from atelier.ui.api import server_options
    from atelier.ui.health import startup_problems

    if store is not None:
        os.environ["ATELIER_STORE"] = str(store)
    if global_lock:
        os.environ["ATELIER_GLOBAL_TURN_LOCK"] = "1"
    apply_store(store)
    settings = get_settings()
    problems = startup_problems(settings)
    if problems:
        fail("cannot serve: " + "; ".join(problems))
    typer.echo(f"Atelier API on http://{host}:{port} with {workers} worker(s)  (docs /docs, widget demo /demo, "
               "readiness /readyz)")
    uvicorn.run("atelier.ui.api:serve_app", factory=True, host=host, port=port, workers=workers,
                log_level="info", **server_options(settings))


@app.command("ui")
def run_ui(
    host: str = typer.Option("127.0.0.1", help="Address to listen on."),
    port: int = typer.Option(8501, help="Port to listen on."),
    store: StoreOption = None,
) -> None:
    """Start the Streamlit shopping app."""
    import os
    import subprocess

    app_path = Path(__file__).resolve().parent / "streamlit_app.py"
    env = dict(os.environ, **({"ATELIER_STORE": str(store)} if store is not None else {}))
    typer.echo(f"Atelier app on http://{host}:{port}")
    raise typer.Exit(subprocess.call(
        [sys.executable, "-m", "streamlit", "run", str(app_path), "--server.address", host, "--server.port",
         str(port), "--server.headless", "true", "--browser.gatherUsageStats", "false", "--client.toolbarMode", "minimal"],
        env=env))


@app.command()
def outfit(
    product: list[str] = typer.Option([], "--product", "-p", help="Catalog product id in the outfit (repeatable)."),
    image: Optional[Path] = typer.Option(None, help="Photo of an item to build the outfit around."),
    slot: Optional[str] = typer.Option(None, help="Only this slot, e.g. shoes (a group of the taxonomy)."),
    k: int = typer.Option(5, "-k", help="Suggestions per slot."),
    store: StoreOption = None,
    gender: list[str] = typer.Option([], help="Department: women | men | kids | unisex (default: the outfit's)."),
    avoid_colour: list[str] = typer.Option([], help="Colour never to suggest (repeatable)."),
    price_max: Optional[float] = typer.Option(None, help="Maximum price of each suggestion."),
    as_json: JsonFlag = False,
) -> None:
    """Complete an outfit: compatible catalog items for each missing slot (top → bottom, shoes, ...)."""
    from atelier.assistant.runtime import Runtime
    from atelier.tools.images import ImageError, load_image
    from atelier.tools.query_parser import SearchFilters

    apply_store(store)
    if not product and image is None:
        fail("give at least one --product ID or an --image PATH")
    filters = SearchFilters(must={"gender": gender} if gender else {},
                            avoid={"colour": avoid_colour} if avoid_colour else {}, price_max=price_max)
    try:
        photo = load_image(image) if image is not None else None
        slots = Runtime().completer.complete(product, photo, slot, k, filters)
    except (ImageError, ValueError, RuntimeError) as exc:
        fail(str(exc))
    if as_json:
        print_json({"slots": [{"group": s.group, "items": [r.model_dump() for r in s.items]} for s in slots]})
        return
    for s in slots:
        typer.secho(f"{s.group}:", bold=True)
        if not s.items:
            typer.echo("    nothing in the catalog fits this slot under your constraints")
        for rank, r in enumerate(s.items, start=1):
            price = "" if r.price is None else f"  {r.price:.2f}"
            typer.echo(f"{rank:2d}. [{r.id}] {r.title} — {r.colour} {r.pattern} {r.category} ({r.gender}){price}\n"
                       f"    {r.why}")


@app.command("train-outfit")
def train_outfit_command(
    epochs: int = typer.Option(12, help="Epochs of the schedule (the best on validation baskets is kept)."),
    out: Optional[Path] = typer.Option(None, help="Weights file (default tools/outfit_weights/outfit.pt)."),
    seed: int = typer.Option(0, help="Random seed."),
    as_json: JsonFlag = False,
) -> None:
    """Train the outfit compatibility model on H&M baskets (never on the test split); minutes on CPU."""
    from atelier.tools.outfit_model import DEFAULT_WEIGHTS
    from atelier.tools.training.outfit import TrainConfig, train_outfit

    try:
        report = train_outfit(out=out or DEFAULT_WEIGHTS, config=TrainConfig(epochs=epochs, seed=seed),
                              progress=None if as_json else typer.echo)
    except (OSError, ValueError, RuntimeError) as exc:
        fail(str(exc))
    if as_json:
        print_json(report.model_dump())
    else:
        typer.echo(f"trained in {report.seconds:.0f}s ({report.epochs} epochs, {report.pairs_train} pairs): "
                   f"validation FITB {report.validation}; weights {report.weights} ({report.size_bytes} bytes)")


@app.command()
def attributes(
    images: list[Path] = typer.Argument(..., help="Product photo(s)."),
    method: str = typer.Option("auto", help="auto (best per attribute) | probe | zero-shot | pixels | fusion"),
    as_json: JsonFlag = False,
) -> None:
    """Read category, group, colour, pattern, gender (and sleeves, neckline, length, fit) off product photos."""
    from atelier.tools.attributes import describe_files
    from atelier.tools.images import ImageError

    try:
        described = describe_files(images, method)
    except (ImageError, ValueError, RuntimeError, OSError) as exc:
        fail(str(exc))
    if as_json:
        print_json(described[0] if len(described) == 1 else described)
        return
    for path, item in zip(images, described):
        typer.secho(str(path), bold=True)
        for name, pred in item["attributes"].items():
            typer.echo(f"  {name:9s} {pred['value']:12s} {pred['confidence']:.2f}")


@app.command("train-probes")
def train_probes_command(
    fpi_limit: int = typer.Option(0, help="FPI training photos sampled (0 = all non-test, as shipped)."),
    out: Optional[Path] = typer.Option(None, help="Output file (default tools/probes/probes.json)."),
) -> None:
    """Train and calibrate the attribute probes on non-test catalog items (embeddings are cached)."""
    from atelier.tools.probes import DEFAULT_PROBES
    from atelier.tools.training.probes import train_heads

    heads = train_heads(fpi_limit=fpi_limit, log=typer.echo)
    heads.save(out or DEFAULT_PROBES)
    typer.echo(f"saved {len(heads.heads)} heads to {out or DEFAULT_PROBES}; defaults: {heads.default}")


@app.command("calibrate-recognition")
def calibrate_recognition_command(
    n: int = typer.Option(300, help="Non-test catalog photos degraded and looked up (each also out of catalog)."),
    precision: float = typer.Option(0.995, help="Precision the thresholds must reach on those photos."),
    tiers: int = typer.Option(2, help="Evidence tiers at most (a third overfitted a 400-photo sample)."),
) -> None:
    """Calibrate catalog-photo recognition and fit the variant projection on the configured store's non-test
    items (writes tools/recognition.json and tools/variant_projection.npz; rerun when the encoder changes)."""
    from atelier.tools.training.recognition import calibrate

    thresholds, scores, _ = calibrate(n=n, target=precision, log=typer.echo, max_tiers=tiers)
    typer.echo(f"accepted when: {thresholds.describe()}; precision {scores.precision:.3f}, recall "
               f"{scores.recall:.3f}, out-of-catalog false accepts {scores.false_accepts:.3f}")


@app.command("calibrate-relevance")
def calibrate_relevance_command(
    store: StoreOption = None,
    queries: Path = typer.Option(Path("benchmarks/data/honesty.yaml"), help="Labelled honesty queries."),
    max_refused: float = typer.Option(0.02, help="Largest share of in-catalog dev queries the gate may refuse."),
    save: bool = typer.Option(True, help="Write the calibration to tools/relevance_gate.json."),
) -> None:
    """Fit the relevance gate for the configured encoder on the dev queries; print dev and held-out accuracy."""
    from atelier.tools.relevance import CALIBRATION_FILE, save_calibration
    from atelier.tools.search import ProductSearch
    from atelier.tools.training.relevance import calibrate

    apply_store(store)
    calibration, _ = calibrate(ProductSearch.from_settings(get_settings()), queries, max_refused, log=typer.echo)
    for split in ("dev", "held_out"):
        typer.echo(f"{split}: " + " ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}"
                                           for k, v in calibration.metrics[split].items()))
    typer.echo(f"threshold {calibration.threshold:.4f}; weights " +
               " ".join(f"{f}={w:+.2f}" for f, w in zip(calibration.features, calibration.weights)))
    if save:
        save_calibration(calibration)
        typer.echo(f"saved the gate for {calibration.encoder} ({calibration.fingerprint}) to {CALIBRATION_FILE}")


@app.command("train-encoder")
def train_encoder_command(
    tune_blocks: int = typer.Option(0, help="Backbone blocks fine-tuned on cached activations (0 = head only)."),
    epochs: int = typer.Option(6, help="Training epochs (H&M is passed over 3 times per epoch)."),
    catalogs: str = typer.Option("hm,fpi", help="Training catalogs (test splits always excluded)."),
    text_adapter: bool = typer.Option(True, help="Also train the residual MiniLM text adapter."),
    out: Optional[Path] = typer.Option(None, help="Weights file (default tools/encoders/weights/compact.pt)."),
    seed: int = typer.Option(0, help="Random seed."),
) -> None:
    """Train the compact encoder's image tower into MiniLM's text space on both catalogs (test split excluded);
    the defaults reproduce the shipped weights (see docs/encoders.md)."""
    from atelier.tools.encoders.heads import DEFAULT_WEIGHTS
    from atelier.tools.training.encoder import train_compact

    metrics = train_compact(out or DEFAULT_WEIGHTS, catalogs=tuple(catalogs.split(",")), tune_blocks=tune_blocks,
                            epochs=epochs, text_adapter=text_adapter, seed=seed, log=typer.echo)
    for gallery, m in metrics.items():
        typer.echo(f"{gallery} test split: " + " ".join(f"{k}={v:.3f}" for k, v in m.items()))


@app.command()
def ask(
    message: str = typer.Argument(..., help='What to say, e.g. "a black dress under 40".'),
    session: Optional[str] = typer.Option(None, "--session", "-s", help="Session id (created on first use)."),
    image: Optional[Path] = typer.Option(None, help="A photo to send with the message."),
    store: StoreOption = None,
    server: Optional[str] = typer.Option(None, help="A running `atelier serve` (http://host:port) to send the turn "
                                                    "to when it answers (default ATELIER_SERVER_URL)."),
    as_json: JsonFlag = False,
) -> None:
    """One message in a conversation; consecutive asks with the same --session continue it."""
    from atelier.ui.chat_cli import ask_payload, render_stream

    apply_store(store)
    if image is not None and not image.is_file():
        fail(f"image not found: {image}")
    assistant = remote_assistant(server or get_settings().server_url, session)
    if assistant is None:
        from atelier.assistant.turn import Assistant

        assistant = Assistant()
    try:
        sid = session or assistant.new_session()
    except AtelierError as exc:
        fail(exc.public_message)
    if as_json:
        payload = ask_payload(list(assistant.turn(sid, message, image=image)), sid)
        print_json(payload)
        if "error" in payload:
            raise typer.Exit(1)
        return
    typer.echo(f"session {sid}")
    events = render_stream(assistant.turn(sid, message, image=image), sys.stdout)
    if any(e.type == "error" for e in events):
        raise typer.Exit(1)


def remote_assistant(url: Optional[str], session: Optional[str]):
    """The server's agent when ``url`` answers; ``None`` (answer in-process, with a note) when it does not,
    unless ``session`` lives on that server — then the conversation cannot go on here, and that is an error."""
    if not url:
        return None
    from atelier.ui.remote import RemoteAssistant

    remote = RemoteAssistant(url, get_settings().home / "remote-sessions.json")
    if remote.ready():
        return remote
    if session and remote.knows(session):
        fail(f"session {session} lives on the server at {url}, which is not answering")
    typer.secho(f"no Atelier server answering at {url}; answering in-process", err=True, fg=typer.colors.YELLOW)
    return None


@app.command()
def chat(
    session: Optional[str] = typer.Option(None, "--session", "-s", help="Continue this session."),
    store: StoreOption = None,
) -> None:
    """Interactive chat in the terminal (replies stream; /help-style commands for photos and clicks)."""
    from atelier.assistant.turn import Assistant
    from atelier.ui.chat_cli import chat_loop

    apply_store(store)
    assistant = Assistant()
    chat_loop(assistant, session or assistant.new_session())


@app.command()
def replay(
    files: list[Path] = typer.Argument(..., help="Conversation YAML files or folders of them."),
    store: StoreOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Replay conversations and check their expectations; exits 1 if any is unmet."""
    from atelier.assistant.replay import format_report, run_files

    apply_store(store)
    missing = [str(f) for f in files if not f.exists()]
    if missing:
        fail(f"not found: {', '.join(missing)}")
    results = run_files(files)
    if as_json:
        print_json([r.model_dump() | {"passed": r.passed} for r in results])
    else:
        typer.echo(format_report(results))
    if not results or any(not r.passed for r in results):
        raise typer.Exit(1)


@app.command("export")
def export_session_command(
    session: str = typer.Argument(..., help="Session id."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Write the YAML here (default: stdout)."),
) -> None:
    """Write a real session as a replay conversation (YAML)."""
    from atelier.assistant.session_export import dump_yaml
    from atelier.assistant.turn import Assistant
    from atelier.memory import SessionNotFound

    try:
        text = dump_yaml(Assistant().export(session))
    except SessionNotFound as exc:
        fail(str(exc))
    if out is None:
        sys.stdout.write(text)
    else:
        out.write_text(text)
        typer.echo(f"wrote {out}")


if __name__ == "__main__":
    app()
