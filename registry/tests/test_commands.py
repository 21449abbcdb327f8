"""The CLI hooks: ``pladis_register_commands`` / ``pladis_register_generate_options`` collection, the
``pladis.plugins`` entry-point group, and isolation of broken command plugins."""

from __future__ import annotations

import logging
import sys
import types
from importlib import metadata

import pytest

import pladis_registry as reg
from pladis_registry import (
    CommandInfo,
    collect_commands,
    collect_generate_options,
    hookimpl,
    make_plugin_manager,
)


def _commands(*items, options=(), fail=False) -> types.SimpleNamespace:
    @hookimpl
    def pladis_register_commands(register):
        for name, module in items:
            register(name, module)
        if fail:
            raise RuntimeError("plugin bug")

    @hookimpl
    def pladis_register_generate_options(register):
        for module in options:
            register(module)

    return types.SimpleNamespace(pladis_register_commands=pladis_register_commands,
                                 pladis_register_generate_options=pladis_register_generate_options)


def test_commands_are_collected_in_registration_order_with_their_plugin():
    manager = make_plugin_manager(autoload=False, plugins=[_commands(("hello", "pkg.hello"), ("bye", "pkg.bye"))])
    found = collect_commands(manager)
    assert list(found) == ["hello", "bye"]
    assert found["hello"] == CommandInfo(name="hello", module="pkg.hello", plugin=found["hello"].plugin)


def test_a_name_already_taken_drops_the_second_plugin_as_a_whole(caplog):
    first, second = _commands(("generate", "core.generate")), _commands(("generate", "evil.gen"), ("mine", "evil.mine"))
    with caplog.at_level(logging.ERROR, logger="pladis.registry"):
        found = collect_commands(make_plugin_manager(autoload=False, plugins=[first, second]))
    assert {name: info.module for name, info in found.items()} == {"generate": "core.generate"}
    assert "command name(s) already registered: ['generate']" in caplog.text


@pytest.mark.parametrize(("item", "message"), [
    (("Bad Name", "pkg.mod"), "name must be a lower-case word"),
    (("ok", "not a/module"), "module must be a dotted module path"),
    (("ok", 3), "module must be a dotted module path"),
])
def test_bad_registrations_skip_that_plugin(caplog, item, message):
    with caplog.at_level(logging.ERROR, logger="pladis.registry"):
        found = collect_commands(make_plugin_manager(autoload=False, plugins=[_commands(item), _commands(("x", "a.b"))]))
    assert list(found) == ["x"] and message in caplog.text


def test_a_raising_hook_is_logged_and_skipped(caplog):
    with caplog.at_level(logging.ERROR, logger="pladis.registry"):
        found = collect_commands(make_plugin_manager(autoload=False, plugins=[_commands(("a", "m.a"), fail=True)]))
    assert found == {} and "plugin bug" in caplog.text


def test_generate_options_are_collected_once_each_in_order():
    manager = make_plugin_manager(autoload=False, plugins=[_commands(options=["a.opt", "b.opt"]),
                                                            _commands(options=["a.opt", "c.opt"])])
    assert collect_generate_options(manager) == ["a.opt", "b.opt", "c.opt"]


def test_the_plugins_group_is_loaded_with_the_distribution(monkeypatch):
    module = types.ModuleType("pladis_fake_tool")
    module.__dict__.update(vars(_commands(("tool", "pladis_fake_tool.cli"))))
    monkeypatch.setitem(sys.modules, module.__name__, module)
    entry = metadata.EntryPoint("tool", module.__name__, reg.PLUGIN_ENTRY_POINT_GROUP)._for(
        types.SimpleNamespace(name="pladis-tool", version="2.0"))
    real = metadata.entry_points
    monkeypatch.setattr(metadata, "entry_points",
                        lambda **kw: [*real(**kw), entry] if kw.get("group") == reg.PLUGIN_ENTRY_POINT_GROUP else real(**kw))
    found = collect_commands(make_plugin_manager(autoload=True))
    assert found["tool"].module == "pladis_fake_tool.cli" and found["tool"].distribution == "pladis-tool"


def test_pladis_onnx_registers_export_onnx_and_generate_options_through_the_group():
    pytest.importorskip("pladis_onnx")
    manager = make_plugin_manager(autoload=True)
    assert collect_commands(manager)["export-onnx"].module == "pladis_onnx.cli.export_command"
    assert collect_generate_options(manager) == ["pladis_onnx.cli.generate_option"]
