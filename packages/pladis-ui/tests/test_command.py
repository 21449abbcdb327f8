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


def test_pladis_ui_says_where_it_listens_serves_and_stops_on_ctrl_c(tmp_path):
    import json
    import os
    import re
    import signal
    import threading
    import urllib.request

    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen([sys.executable, "-m", "pladis", "ui", "--port", "0", "--out", str(tmp_path / "out")],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path, env=env)
    killer = threading.Timer(180, process.kill)
    killer.start()
    try:
        lines = []
        while not any("serving" in line for line in lines):
            line = process.stdout.readline()
            assert line, f"pladis ui ended before serving: {process.stderr.read()}"
            lines.append(line)
        served = re.search(r"serving (http://127\.0\.0\.1:(\d+)/) — bound to 127\.0\.0\.1, reachable from this "
                           r"machine only", lines[-1])
        assert served, lines
        assert lines[0].startswith("pladis ui: model embedded:toy · backbone sd15")
        with urllib.request.urlopen(served.group(1) + "api/info", timeout=30) as response:
            assert json.loads(response.read())["model"]["source"] == "embedded:toy"
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=60) == 0
    finally:
        killer.cancel()
        if process.poll() is None:
            process.kill()


def test_the_pladis_cli_lists_and_parses_ui_through_the_plugin_hook(capsys):
    from pladis.cli import main

    assert main(["--help"]) == 0
    assert f" ui {command.HELP} " in " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    assert main(["ui", "--port", "http"]) == 2
    assert "argument --port: 'http' is not an integer port" in capsys.readouterr().err
