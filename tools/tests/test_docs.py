"""The README and docs/: size, the set-up commands, every relative link and image, and the README's Python
examples run on the toy model."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
README_LIMIT_BYTES = 10_000

#: The Markdown files whose links are checked.
PAGES = (README, ROOT / "CHANGELOG.md", *sorted((ROOT / "docs").glob("*.md")))

LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^```.*?^```", re.S | re.M)


def _prose(text: str) -> str:
    """``text`` without its fenced code blocks (whose brackets are code, not links)."""
    return FENCE.sub("", text)


def _slug(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    return {_slug(m.group(1)) for m in re.finditer(r"^#{1,6} (.+)$", _prose(page.read_text()), re.M)}


def _relative_links(page: Path) -> list[str]:
    return [target for target in LINK.findall(_prose(page.read_text()))
            if not re.match(r"^[a-z][a-z0-9+.-]*:", target)]  # http:, https:, mailto: ...


def test_readme_is_at_most_10_kb():
    size = len(README.read_bytes())
    assert size <= README_LIMIT_BYTES, f"README.md is {size} bytes; the limit is {README_LIMIT_BYTES}"


def test_readme_shows_the_two_setup_commands_and_the_makefile_has_them():
    text = README.read_text()
    for command in ("make demo", "make test"):
        assert re.search(rf"^ {{4}}{command}\b", text, re.M), f"README.md does not show `{command}` as a command"
    makefile = (ROOT / "Makefile").read_text()
    shown = set(re.findall(r"^ {4}make ([\w-]+)", text, re.M))
    assert {"demo", "test"} <= shown
    for target in sorted(shown):
        assert re.search(rf"^{re.escape(target)}:", makefile, re.M), f"README.md shows `make {target}`; Makefile lacks it"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_and_images_exist(page):
    assert page.is_file(), f"{page.relative_to(ROOT)} is missing"
    broken = []
    for target in _relative_links(page):
        path_part, _, anchor = target.partition("#")
        resolved = (page.parent / path_part).resolve() if path_part else page
        if not resolved.exists():
            broken.append(target)
            continue
        if anchor and resolved.suffix == ".md" and anchor not in _anchors(resolved):
            broken.append(target)
    assert not broken, f"{page.relative_to(ROOT)}: broken links {broken}"


def test_readme_links_every_page_of_docs():
    """The README's documentation list names every page in docs/."""
    targets = {(ROOT / t.partition("#")[0]).resolve().relative_to(ROOT).as_posix() for t in _relative_links(README)}
    pages = {page.relative_to(ROOT).as_posix() for page in (ROOT / "docs").glob("*.md")}
    assert pages <= targets, f"README.md does not link {sorted(pages - targets)}"


def test_link_checker_finds_a_broken_link(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("# Title\n\n[ok](#title) [gone](missing.md) ![img](nope.png) [web](https://x.org/y)\n"
                    "```\n[not a link](inside-code.md)\n```\n")
    assert _relative_links(page) == ["#title", "missing.md", "nope.png"]
    assert _anchors(page) == {"title"}
    assert _slug("`pladis export-onnx`") == "pladis-export-onnx"
    assert _slug("What the toy benchmark found") == "what-the-toy-benchmark-found"


# --- the README's Python examples, on the toy model ------------------------------------------------------

#: SDXL names in the README, and what the toy model (an SD 1.x pipeline on CPU) uses instead.
TOY_SUBSTITUTIONS = {
    "StableDiffusionXLPipeline": "StableDiffusionPipeline",
    "StableDiffusionXLPAGPipeline": "StableDiffusionPAGPipeline",
    "StableDiffusionXLSEGPipeline": "StableDiffusionSEGPipeline",
    '"stabilityai/stable-diffusion-xl-base-1.0"': "TOY_MODEL",
    "dtype=torch.float16": "dtype=torch.float32, local_files_only=True",
    '.to("cuda")': "",
}


def _python_blocks() -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", README.read_text(), re.S | re.M)


def _toy_model_dir() -> Path:
    from toy import MODEL_DIR

    if not (MODEL_DIR / "model_index.json").is_file():
        pytest.skip(f"the toy model is not at {MODEL_DIR}")
    return MODEL_DIR


def _on_toy(code: str) -> str:
    for name, replacement in TOY_SUBSTITUTIONS.items():
        code = code.replace(name, replacement)
    return code


def test_readme_python_examples_run_on_the_toy_model():
    import pladis

    blocks = _python_blocks()
    assert len(blocks) == 2, "expected the usage example and the guidance example"
    joined = "\n".join(blocks)
    for name in TOY_SUBSTITUTIONS:
        assert name in joined, f"the README's examples no longer contain {name!r}; update TOY_SUBSTITUTIONS"
    namespace: dict = {"TOY_MODEL": str(_toy_model_dir())}

    exec(compile(_on_toy(blocks[0]), "README.md:usage", "exec"), namespace)
    pipe = namespace["pipe"]
    original = dict(pipe.unet.attn_processors)
    assert not any(isinstance(p, pladis.PLADISAttnProcessor) for p in original.values()), \
        "after remove() and the `enabled` block, PLADIS must be off"
    assert pladis.remove(pipe) is False  # nothing left to remove

    exec(compile(_on_toy(blocks[1]), "README.md:guidance", "exec"), namespace)
    pag, seg = namespace["pag"], namespace["seg"]
    assert pag.unet is pipe.unet and seg.unet is pipe.unet, "from_pipe must share the denoiser"
    assert any(isinstance(p, pladis.PLADISAttnProcessor) for p in pipe.unet.attn_processors.values()), \
        "PLADIS must still be on after the PAG and SEG calls"
    assert pladis.remove(pipe) is True


# --- docs/cli.md covers the command line ----------------------------------------------------------------


def _subcommands() -> dict:
    import argparse

    from pladis.cli import build_parser

    parser = build_parser()
    (action,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(action.choices)


def test_cli_md_documents_every_command_and_option():
    text = (ROOT / "docs" / "cli.md").read_text()
    missing = []
    for name, subparser in _subcommands().items():
        if not re.search(rf"^## `pladis {re.escape(name)}`$", text, re.M):
            missing.append(f"the section ## `pladis {name}`")
        for action in subparser._actions:
            options = [o for o in action.option_strings if o.startswith("--") and o != "--help"]
            if options and not any(re.search(rf"`{re.escape(o)}(?![\w-])", text) for o in options):
                missing.append(f"{name} {options[0]}")
    assert not missing, f"docs/cli.md does not document: {missing}"


def test_cli_md_gives_the_exit_statuses_the_cli_uses():
    from pladis.cli._errors import EXIT_OK, EXIT_RUNTIME, EXIT_USAGE

    text = (ROOT / "docs" / "cli.md").read_text()
    table = text[text.index("## Errors and exit status"):]
    for status, word in ((EXIT_OK, "success"), (EXIT_RUNTIME, "run time"), (EXIT_USAGE, "bad input")):
        assert re.search(rf"^\| {status} \| [^\n]*{word}", table, re.M), f"exit status {status} ({word}) undocumented"
