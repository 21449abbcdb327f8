"""The page's inputs: bad values are refused with a message naming the field; good ones mean what the
same options mean on the command line."""

from __future__ import annotations

import argparse

import pytest
from pladis_ui.forms import MAX_STEPS, FormError, parse_request

from pladis.cli import _options, _session, compare, sweep

ALL_GUIDANCE = {"pag": True, "seg": True}


def cli(module, *argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    module.add_parser(parser.add_subparsers())
    return parser.parse_args([module.__name__.rsplit(".", 1)[1], *argv])


@pytest.mark.parametrize(("fields", "field", "message"), [
    ({"prompt": ""}, "prompt", "prompt: enter a prompt (it is empty)"),
    ({"prompt": "   "}, "prompt", "prompt: enter a prompt (it is empty)"),
    ({"scale": "two"}, "scale", "λ (scale): 'two' is not a number"),
    ({"scale": "nan"}, "scale", "λ (scale): 'nan' is not a finite number"),
    ({"scale": "0"}, "scale", "λ (scale): must differ from 0 here"),
    ({"alpha": "3"}, "alpha", "α (alpha): alpha must be 1 (softmax) or in [1.01, 2] (1.5 = entmax15, 2 = sparsemax); got 3.0"),
    ({"alpha": "0.5"}, "alpha", "α (alpha): alpha must be 1 (softmax) or in [1.01, 2]"),
    ({"steps": "100000"}, "steps", f"steps: must be in [1, {MAX_STEPS}] on this page; got 100000"),
    ({"steps": "0"}, "steps", "steps: must be >= 1; got 0"),
    ({"steps": "2.5"}, "steps", "steps: '2.5' is not an integer"),
    ({"seed": "-1"}, "seed", "seed: seeds are in [0, 2**64 - 1]; got -1"),
    ({"temperature": "0"}, "temperature", "temperature: temperature must be in [1e-06, 1e+06]; got 0"),
    ({"start": "0.8", "end": "0.2"}, "start", "start (0.8) must not exceed end (0.2)"),
    ({"end": "1.5"}, "end", "end: must be a fraction in [0, 1]; got 1.5"),
    ({"guidance_scale": "-1"}, "guidance_scale", "CFG scale: must be >= 0; got -1"),
    ({"guidance": "pag", "pag_scale": "x"}, "pag_scale", "PAG scale: 'x' is not a number"),
    ({"guidance": "magic"}, "guidance", "guidance: one of cfg, pag, seg; got 'magic'"),
    ({"kind": "sweep", "alphas": "1.5,2.5"}, "alphas", "α values: alpha must be 1 (softmax) or in [1.01, 2]"),
    ({"kind": "sweep", "scales": ",".join(str(i) for i in range(30))}, "scales", "λ values × α values: at most 48 cells on this page; got 30 × 2"),
    ({"kind": "video"}, "kind", "kind: one of compare, sweep, maps; got 'video'"),
    ({"prompt": ["a", "list"]}, "prompt", "prompt: expected text, got list"),
])
def test_bad_input_names_the_field_and_what_is_allowed(fields, field, message):
    with pytest.raises(FormError) as caught:
        parse_request({"prompt": "a red circle", **fields}, guidance=ALL_GUIDANCE)
    assert caught.value.field == field
    assert caught.value.message.startswith(message)


def test_guidance_the_model_lacks_is_refused():
    with pytest.raises(FormError, match="guidance: SEG is not available for this model"):
        parse_request({"prompt": "x", "guidance": "seg"}, guidance={"pag": True, "seg": False})


def test_compare_fields_mean_what_the_compare_options_mean():
    page = parse_request({"prompt": "a red circle", "seed": "7", "steps": "3", "guidance_scale": "4.5",
                          "scale": "1.5", "alpha": "2", "temperature": "0.5", "layers": "mid,up",
                          "start": "0.1", "end": "0.9", "guidance": "pag", "pag_scale": "2",
                          "negative_prompt": "blurry"}, guidance=ALL_GUIDANCE)
    line = cli(compare, "a red circle", "--seed", "7", "--steps", "3", "--guidance-scale", "4.5", "--scale", "1.5",
               "--alpha", "2", "--temperature", "0.5", "--layers", "mid,up", "--start", "0.1", "--end", "0.9",
               "--pag-scale", "2", "--negative-prompt", "blurry")
    assert page.seed == line.seed == 7
    assert _options.pladis_settings(page) == _options.pladis_settings(line)
    assert _options.pladis_settings(page, scale=0.0) == _options.pladis_settings(line, scale=0.0)
    assert _session._overrides(page) == _session._overrides(line)
    assert _session._guidance(page) == _session._guidance(line) == {"pag_scale": 2.0}


def test_blank_fields_take_the_command_line_defaults():
    page = parse_request({"prompt": "a cat", "steps": "", "scale": " "}, guidance=ALL_GUIDANCE)
    line = cli(compare, "a cat")
    assert _options.pladis_settings(page) == _options.pladis_settings(line)
    assert _session._overrides(page) == _session._overrides(line) == {}
    assert page.seed == 0


def test_sweep_fields_mean_what_the_sweep_options_mean():
    page = parse_request({"kind": "sweep", "prompt": "a cat", "scales": "0, 1, 2,2", "alphas": "2,1.5",
                          "guidance": "seg", "seg_scale": "1.5", "seg_layers": "mid", "seg_blur_sigma": "10"},
                         guidance=ALL_GUIDANCE)
    line = cli(sweep, "a cat", "--scales", "0,1,2,2", "--alphas", "2,1.5", "--seg-scale", "1.5",
               "--seg-layers", "mid", "--seg-blur-sigma", "10")
    assert page.scales == line.scales == [0.0, 1.0, 2.0]
    assert page.alphas == line.alphas == [2.0, 1.5]
    assert _session._guidance(page) == _session._guidance(line)
