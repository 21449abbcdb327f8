"""Test kit: offline helpers for building tiny, random-weight pipelines (tokenizers, ...)."""
