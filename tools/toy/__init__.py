"""Toy text-to-image testbed for PLADIS: data generator, alignment scorer, training and benchmark scripts."""

from pathlib import Path

MODEL_DIR = Path(__file__).resolve().parents[2] / "packages" / "pladis" / "src" / "pladis" / "toy_model"
"""The shipped toy model (a StableDiffusionPipeline folder written by ``tools/toy/train.py``)."""
