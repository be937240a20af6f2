"""Inference backends: they call a model. Built-ins: `fake` (scripted) and `hf` (local transformers)."""
