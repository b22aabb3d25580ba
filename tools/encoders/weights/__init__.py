"""Trained compact-encoder weights shipped with the package (see docs/encoders.md)."""

from pathlib import Path

WEIGHTS_DIR = Path(__file__).resolve().parent
DEFAULT_WEIGHTS = WEIGHTS_DIR / "compact.pt"
