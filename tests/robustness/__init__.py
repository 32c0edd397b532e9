"""Robustness suite: histories recorded under kills and pauses, and the checker that judges them."""
