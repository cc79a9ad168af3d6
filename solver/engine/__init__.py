"""Solve a pool's domains through the pipeline, with one solve cache."""
