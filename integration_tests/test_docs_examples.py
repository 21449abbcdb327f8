"""The examples of docs/writing-adapters.md and of the hookspec guide run as written."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest

pytest.importorskip("diffusers")

import pladis_registry.hookspecs  # noqa: E402

DOC = Path(__file__).resolve().parents[1] / "docs" / "writing-adapters.md"


def test_writing_adapters_examples_run_in_order() -> None:
    blocks = re.findall(r"^```python\n(.*?)^```$", DOC.read_text(), flags=re.S | re.M)
    assert len(blocks) == 4
    namespace: dict = {}
    for block in blocks:
        exec(compile(block, str(DOC), "exec"), namespace)  # check_adapter raises on any broken contract
    assert namespace["MY_UNET"].preset().num_inference_steps == 50
    assert namespace["MY_DIT"].block_index("transformer_blocks.12.attn2") == 12


def test_hookspec_guide_example_is_correct_when_copied() -> None:
    # as a reader copies it from the source file (a non-raw docstring would show "\\." there)
    source = Path(pladis_registry.hookspecs.__file__).read_text()
    start = source.rindex("\n", 0, source.index("from pladis_registry import")) + 1
    code = textwrap.dedent(source[start:source.index("2. Declare")])
    namespace: dict = {}
    exec(code, namespace)
    spec = namespace["MY_SPEC"]
    assert spec.preset().num_inference_steps == 25  # default_preset is declared
    assert spec.group_of("down_blocks.1.attentions.0.transformer_blocks.0.attn2") == "down"
    assert spec.group_of("mid_block.attentions.0.transformer_blocks.0.attn2") == "mid"
