"""The ``ui`` command: registered through the ``pladis.plugins`` hook, light to import, its options."""

from __future__ import annotations

import argparse
import subprocess
import sys
from importlib import metadata

import pytest
from pladis_ui import command, plugin


def test_plugin_registers_the_ui_command_module():
    calls = []
    plugin.pladis_register_commands(lambda name, module: calls.append((name, module)))
    assert calls == [("ui", "pladis_ui.command")]


def test_entry_point_in_the_plugins_group():
    points = [p for p in metadata.entry_points(group="pladis.plugins") if p.name == "ui"]
    assert [p.value for p in points] == ["pladis_ui.plugin"]
    assert points[0].load() is plugin


def test_command_module_is_light():
    code = "import sys, pladis_ui.command, pladis_ui.plugin; print(sorted({'torch', 'diffusers'} & set(sys.modules)))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="pladis")
    command.add_parser(parser.add_subparsers())
    return parser.parse_args(["ui", *argv])


def test_defaults_bind_to_localhost():
    args = parse()
    assert (args.host, args.port, args.model, args.backend) == ("127.0.0.1", 7860, None, "auto")
    assert args.run is command.run


@pytest.mark.parametrize("port", ["-1", "65536", "http"])
def test_bad_port_is_a_usage_error(port, capsys):
    with pytest.raises(SystemExit) as caught:
        parse("--port", port)
    assert caught.value.code == 2
    assert "--port" in capsys.readouterr().err
