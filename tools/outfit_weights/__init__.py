"""Shipped weights of the outfit compatibility model (``atelier train-outfit`` rewrites them)."""
