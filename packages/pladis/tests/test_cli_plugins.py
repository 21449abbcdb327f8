"""CLI commands as plugins: the built-in commands and pladis-onnx's register through
``pladis_register_commands`` / ``pladis_register_generate_options``; a plugin's command runs; broken
ones are skipped; ``pladis --help`` and ``pladis plugins`` import no torch; ``python -m pladis`` works."""

from __future__ import annotations

import subprocess
import sys
import types

import pytest

from pladis.cli import _commands, main
from pladis_registry import hookimpl, make_plugin_manager


def _plugin_module(monkeypatch, name: str, source: str) -> str:
    module = types.ModuleType(name)
    exec(source, module.__dict__)  # noqa: S102 - the test's own source
    monkeypatch.setitem(sys.modules, name, module)
    return name


HELLO = '''
HELP = "say hello"
def add_parser(subparsers):
    parser = subparsers.add_parser("hello", help=HELP)
    parser.add_argument("--name", default="world")
    parser.set_defaults(run=run)
def run(args):
    print(f"hello {args.name}")
    return 3
'''

OPTION = '''
def add_options(parser):
    parser.add_argument("--shout", action="store_true")
def run(args, prompts):
    if args.shout:
        print("SHOUT " + " ".join(prompts))
        return 0
    return None
'''


@pytest.fixture
def with_plugins(monkeypatch):
    """Install plugins (hook-implementing namespaces) next to the built-in commands."""

    def install(*plugins):
        manager = make_plugin_manager(autoload=False, plugins=[_commands, *plugins])
        monkeypatch.setattr(_commands, "plugin_manager", lambda: manager)

    return install


def _commands_plugin(*items, options=()):
    @hookimpl
    def pladis_register_commands(register):
        for name, module in items:
            register(name, module)

    @hookimpl
    def pladis_register_generate_options(register):
        for module in options:
            register(module)

    return types.SimpleNamespace(pladis_register_commands=pladis_register_commands,
                                 pladis_register_generate_options=pladis_register_generate_options)


def test_the_builtin_commands_register_through_the_hook():
    manager = make_plugin_manager(autoload=False, plugins=[_commands])
    from pladis_registry import collect_commands

    assert {n: i.module for n, i in collect_commands(manager).items()} == _commands.BUILTIN_COMMANDS


def test_a_plugin_command_is_listed_and_runs(with_plugins, monkeypatch, capsys):
    with_plugins(_commands_plugin(("hello", _plugin_module(monkeypatch, "pladis_test_hello", HELLO))))
    assert main(["--help"]) == 0
    assert "say hello" in capsys.readouterr().out
    assert main(["hello", "--name", "pladis"]) == 3
    assert capsys.readouterr().out == "hello pladis\n"


def test_a_plugin_cannot_replace_a_builtin_command(with_plugins, monkeypatch, capsys):
    with_plugins(_commands_plugin(("generate", _plugin_module(monkeypatch, "pladis_test_hello", HELLO))))
    assert main(["generate", "--help"]) == 0
    assert "Generate one image per prompt" in capsys.readouterr().out


def test_a_broken_command_module_is_skipped_and_the_rest_works(with_plugins, monkeypatch, capsys, caplog):
    wrong = _plugin_module(monkeypatch, "pladis_test_wrong", "def add_parser(subparsers):\n    raise RuntimeError('boom')")
    misnamed = _plugin_module(monkeypatch, "pladis_test_misnamed", "def add_parser(s):\n    s.add_parser('other')")
    with_plugins(_commands_plugin(("broken", "pladis_test_nowhere"), ("wrong", wrong), ("misnamed", misnamed)))
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "compare" in out and not {"broken", "wrong", "misnamed", "other"} & set(out.split())
    assert "skipping command 'broken'" in caplog.text and "No module named 'pladis_test_nowhere'" in caplog.text
    assert "RuntimeError: boom" in caplog.text and "did not add a sub-command named 'misnamed'" in caplog.text
    assert main(["other"]) == 2 and "invalid choice: 'other'" in capsys.readouterr().err


def test_only_the_command_that_runs_is_imported(with_plugins, monkeypatch):
    with_plugins(_commands_plugin(("hello", "pladis_test_never_imported")))
    from pladis.cli import build_parser

    imported = []
    real = _commands.import_module
    monkeypatch.setattr(_commands, "import_module", lambda path, what: imported.append(path) or real(path, what))
    build_parser(["plugins"])
    assert imported == ["pladis.cli.plugins"]


def test_generate_options_of_a_plugin_take_the_command_over(with_plugins, monkeypatch, capsys):
    with_plugins(_commands_plugin(options=[_plugin_module(monkeypatch, "pladis_test_option", OPTION)]))
    assert main(["generate", "a", "b", "--shout"]) == 0
    assert capsys.readouterr().out == "SHOUT a b\n"


def test_an_unknown_generate_option_without_its_plugin_is_one_usage_line(with_plugins, capsys):
    with_plugins()
    assert main(["generate", "a", "--shout"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("pladis: error: unrecognized arguments: --shout")


@pytest.mark.parametrize("argv", [["--help"], ["plugins"], ["generate", "--help"]])
def test_help_and_plugins_import_no_torch(argv):
    code = (f"import sys; from pladis.cli import main; status = main({argv!r}); "
            "sys.stdout.flush(); assert 'torch' not in sys.modules, 'torch imported'; sys.exit(status)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


def test_python_m_pladis_is_the_cli():
    done = subprocess.run([sys.executable, "-m", "pladis", "frobnicate"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert done.stderr.startswith("pladis: error: argument COMMAND: invalid choice: 'frobnicate'")


def test_plugins_lists_the_commands_plugins_add(with_plugins, monkeypatch, capsys):
    with_plugins(_commands_plugin(("hello", _plugin_module(monkeypatch, "pladis_test_hello", HELLO))))
    assert main(["plugins"]) == 0
    out = capsys.readouterr().out.splitlines()
    table = out[out.index("") + 1:]
    assert table[0].split() == ["COMMAND", "DISTRIBUTION"] and table[1].split()[0] == "hello"
    assert not any(line.split()[0] in _commands.BUILTIN_COMMANDS for line in table)
