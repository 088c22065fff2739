"""Rendering results to files and text. Imports neither Qt nor torch, so a saved run
opens on a machine without CUDA."""
