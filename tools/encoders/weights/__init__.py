"""Trained compact-encoder weights shipped with the package (see docs/encoders.md)."""
