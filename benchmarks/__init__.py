"""Atelier benchmarks: speed and quality, each printed as ratios against baselines run in the same process."""
