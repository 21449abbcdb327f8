"""The toy grammar, its renderer and the deterministic alignment scorer."""

from __future__ import annotations

import numpy as np
import pytest
from toy import data, scorer


def test_every_prompt_round_trips_and_the_split_is_disjoint():
    specs = data.all_specs()
    assert len({data.prompt_of(s) for s in specs}) == len(specs)
    for s in specs:
        assert data.parse(data.prompt_of(s)) == s
    train = {data.prompt_of(s) for pool in data.training_specs().values() for s in pool}
    held = {data.prompt_of(s) for s in data.held_out_specs()}
    assert held and not train & held
    rng = np.random.default_rng(0)
    for _ in range(20):
        _, captions = data.batch(rng, 32)
        assert not set(captions) & held


@pytest.mark.parametrize("bad", ["", "a purple circle", "a red blob", "five red circles", "a red circle near a blue square"])
def test_parse_rejects_prompts_outside_the_grammar(bad):
    with pytest.raises(ValueError):
        data.parse(bad)


def test_the_generator_is_deterministic():
    a, pa = data.batch(np.random.default_rng(3), 16)
    b, pb = data.batch(np.random.default_rng(3), 16)
    assert pa == pb and np.array_equal(a, b)


@pytest.mark.parametrize("seed", [0, 1])
def test_ground_truth_images_score_one(seed):
    rng = np.random.default_rng(seed)
    for spec in data.all_specs():
        result = scorer.score(data.render(spec, rng), data.prompt_of(spec))
        assert result["overall"] == 1.0 and result["all"] == 1.0, (data.prompt_of(spec), result)
        assert ("relation" in result) == (spec.kind == "relation")


def _render(prompt, seed=0):
    return data.render(data.parse(prompt), np.random.default_rng(seed))


def test_blank_image_scores_zero():
    blank = np.full((data.SIZE, data.SIZE, 3), data.BACKGROUND, np.uint8)
    for prompt in ("a red circle", "three blue squares", "a red circle to the left of a blue square"):
        assert scorer.score(blank, prompt)["overall"] == 0.0


def test_wrong_colour_binding_and_missing_object():
    image = _render("a red circle and a blue square")
    swapped = scorer.score(image, "a blue circle and a red square")
    assert swapped["presence"] == 1.0 and swapped["binding"] == 0.0 and swapped["overall"] < 1.0
    missing = scorer.score(image, "a red circle and a green square")
    assert missing["presence"] == 0.5 and missing["count"] == 0.0


def test_wrong_shape():
    result = scorer.score(_render("a red square"), "a red triangle")
    assert result["presence"] == 1.0 and result["binding"] == 0.0 and result["all"] == 0.0


@pytest.mark.parametrize("relation,mirror", [("to the left of", np.fliplr), ("above", np.flipud)])
def test_mirrored_relation_fails(relation, mirror):
    prompt = f"a red circle {relation} a blue square"
    for seed in range(5):
        image = _render(prompt, seed)
        assert scorer.score(image, prompt)["relation"] == 1.0
        assert scorer.score(np.ascontiguousarray(mirror(image)), prompt)["relation"] == 0.0


def test_wrong_count_and_extra_objects():
    image = _render("three green triangles")
    assert scorer.score(image, "two green triangles")["count"] == 0.0
    assert scorer.score(image, "three green triangles")["count"] == 1.0
    extra = _render("a green triangle and a red circle")
    result = scorer.score(extra, "a green triangle")
    assert result["presence"] == 1.0 and result["count"] == 0.0


def test_blurry_colours_still_segment():
    image = _render("a yellow circle below a blue square").astype(float)
    noisy = np.clip(image + np.random.default_rng(0).normal(0, 15, image.shape), 0, 255).astype(np.uint8)
    assert scorer.score(noisy, "a yellow circle below a blue square")["overall"] == 1.0
