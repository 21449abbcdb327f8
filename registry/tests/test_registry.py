"""The plugin registry: factory, lazy discovery, isolation of broken plugins, env switches."""

from __future__ import annotations

import logging
import subprocess
import sys
import types
from importlib import metadata

import pytest

import pladis_registry as reg
from pladis_registry import AdapterSpec, Preset, hookimpl, make_plugin_manager
from pladis_registry.manager import collect_adapters


def _plugin(*specs: AdapterSpec, fail: bool = False) -> types.SimpleNamespace:
    @hookimpl
    def pladis_register_adapters(register):
        for spec in specs:
            register(spec)
        if fail:
            raise RuntimeError("plugin bug")

    return types.SimpleNamespace(pladis_register_adapters=pladis_register_adapters)


def test_factory_builds_independent_managers_with_explicit_plugins():
    first = make_plugin_manager(autoload=False, plugins=[_plugin(AdapterSpec("one"))])
    second = make_plugin_manager(autoload=False)
    assert set(collect_adapters(first)) == {"one"}
    assert collect_adapters(second) == {}


def test_builtin_adapters_are_discovered_through_entry_points_with_their_distribution():
    adapters = collect_adapters(make_plugin_manager(autoload=True))
    for name in ("sd15", "sdxl", "sana", "generic"):
        assert name in adapters
        assert adapters[name].distribution == f"pladis-adapter-{name}"
        assert adapters[name].version


def test_broken_hook_is_logged_and_skipped(caplog):
    manager = make_plugin_manager(
        autoload=False, plugins=[_plugin(AdapterSpec("good")), _plugin(AdapterSpec("bad"), fail=True)]
    )
    with caplog.at_level(logging.ERROR, logger="pladis.registry"):
        adapters = collect_adapters(manager)
    assert set(adapters) == {"good"}
    assert "registration failed" in caplog.text and "plugin bug" in caplog.text


def test_duplicate_adapter_name_drops_the_second_plugin(caplog):
    manager = make_plugin_manager(
        autoload=False, plugins=[_plugin(AdapterSpec("same", description="first")), _plugin(AdapterSpec("same"))]
    )
    with caplog.at_level(logging.ERROR, logger="pladis.registry"):
        adapters = collect_adapters(manager)
    assert adapters["same"].spec.description == "first"
    assert "already registered" in caplog.text


def test_entry_point_that_fails_to_import_is_logged_and_skipped(monkeypatch, caplog):
    broken = metadata.EntryPoint("broken", "no_such_module_for_pladis:plugin", reg.ENTRY_POINT_GROUP)
    real = metadata.entry_points
    monkeypatch.setattr(
        metadata, "entry_points", lambda **kw: [*real(**kw), broken] if kw.get("group") == reg.ENTRY_POINT_GROUP else real(**kw)
    )
    with caplog.at_level(logging.ERROR, logger="pladis.registry"):
        manager = make_plugin_manager(autoload=True)
    assert "skipping broken adapter plugin 'broken' (no_such_module_for_pladis:plugin): ModuleNotFoundError" in caplog.text
    assert all(r.exc_info is None for r in caplog.records)  # one line per command, the traceback at DEBUG
    adapters = collect_adapters(manager)
    assert "sd15" in adapters and "broken" not in adapters


def test_env_disables_autoload_and_allow_list_filters(monkeypatch):
    monkeypatch.setenv(reg.DISABLE_AUTOLOAD_ENV, "1")
    assert collect_adapters(make_plugin_manager()) == {}
    monkeypatch.delenv(reg.DISABLE_AUTOLOAD_ENV)
    monkeypatch.setenv(reg.ALLOW_LIST_ENV, "sd15, sana")
    assert set(collect_adapters(make_plugin_manager())) == {"sd15", "sana"}


def test_registry_is_lazy_and_collects_once():
    calls = []

    @hookimpl
    def pladis_register_adapters(register):
        calls.append(1)
        register(AdapterSpec("counted"))

    registry = reg.Registry(make_plugin_manager(autoload=False, plugins=[types.SimpleNamespace(
        pladis_register_adapters=pladis_register_adapters)]))
    assert calls == []
    assert registry.get("counted").name == "counted"
    registry.adapters()
    assert calls == [1]
    with pytest.raises(ValueError, match=r"unknown backbone 'nope'; choose one of \['counted'\]"):
        registry.get("nope")


def test_importing_pladis_loads_no_plugin_and_no_diffusers():
    code = (
        "import sys, pladis, pladis_registry; "
        "print(any(m.startswith('pladis_adapter') for m in sys.modules), 'diffusers' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


def test_spec_validation_and_lookup_helpers():
    with pytest.raises(ValueError, match="lower-case"):
        AdapterSpec("Bad Name")
    with pytest.raises(ValueError, match="default_preset 'x' is not one of"):
        AdapterSpec("a", default_preset="x")
    spec = AdapterSpec(
        "a",
        layer_groups=reg.UNET_LAYER_GROUPS,
        block_index_pattern=r"^transformer_blocks\.(\d+)\.",
        presets={"p": Preset("p", "DDIMScheduler", num_inference_steps=4, guidance_scale=0.0,
                             call_overrides={"eta": 1.0})},
        default_preset="p",
    )
    assert spec.group_of("down_blocks.0.attentions.0.transformer_blocks.0.attn2") == "down"
    assert spec.group_of("mid_block.attentions.0.transformer_blocks.0.attn2") == "mid"
    assert spec.group_of("other.attn2") == "other"
    assert spec.block_index("transformer_blocks.12.attn2") == 12
    assert spec.preset().call_kwargs() == {"guidance_scale": 0.0, "num_inference_steps": 4, "eta": 1.0}
    assert Preset("own", None, guidance_scale=None).call_kwargs() == {}  # the pipeline's own default
    with pytest.raises(ValueError, match=r"unknown preset 'q' for backbone 'a'; choose one of \['p'\]"):
        spec.preset("q")


def test_preset_configures_the_scheduler_from_the_pipeline_config():
    from diffusers import DDIMScheduler, EulerDiscreteScheduler

    pipe = types.SimpleNamespace(scheduler=EulerDiscreteScheduler(beta_schedule="scaled_linear"))
    preset = Preset("x", "DDIMScheduler", scheduler_config={"timestep_spacing": "trailing"}, timesteps=(999, 499))
    kwargs = preset.configure(pipe)
    assert isinstance(pipe.scheduler, DDIMScheduler)
    assert pipe.scheduler.config.timestep_spacing == "trailing"
    assert pipe.scheduler.config.beta_schedule == "scaled_linear"
    assert kwargs == {"guidance_scale": 7.5, "timesteps": [999, 499]}
    keep = Preset("keep", None, scheduler_config={"steps_offset": 1})
    keep.configure(pipe)
    assert isinstance(pipe.scheduler, DDIMScheduler) and pipe.scheduler.config.steps_offset == 1
    with pytest.raises(ValueError, match="no scheduler class 'NoSuchScheduler'"):
        Preset("bad", "NoSuchScheduler").configure(pipe)


def _fake_entry_points(monkeypatch, dist=None, prefix="pladis_fake_", **plugins):
    """Entry points name → module attributes, added to the real ones (modules ``prefix + name`` made on the
    fly), of the distribution named ``dist`` (none when None)."""
    entries = []
    for name, attrs in plugins.items():
        module = types.ModuleType(f"{prefix}{name.replace('-', '_')}")
        module.__dict__.update(attrs)
        monkeypatch.setitem(sys.modules, module.__name__, module)
        entry = metadata.EntryPoint(name, module.__name__, reg.ENTRY_POINT_GROUP)
        entries.append(entry if dist is None else entry._for(types.SimpleNamespace(name=dist, version="1.0")))
    real = metadata.entry_points
    monkeypatch.setattr(
        metadata, "entry_points", lambda **kw: [*real(**kw), *entries] if kw.get("group") == reg.ENTRY_POINT_GROUP else real(**kw)
    )


def test_a_misspelt_hook_skips_that_plugin_only(monkeypatch, caplog):
    @hookimpl
    def pladis_register_adapter(register):  # missing "s"
        register(AdapterSpec("typo"))

    _fake_entry_points(monkeypatch, typo={"pladis_register_adapter": pladis_register_adapter})
    with caplog.at_level(logging.ERROR, logger="pladis.registry"):
        adapters = collect_adapters(make_plugin_manager(autoload=True))  # raised PluginValidationError
    assert "sd15" in adapters and "typo" not in adapters
    assert "skipping adapter plugin 'typo'" in caplog.text and "pladis_register_adapter" in caplog.text


def test_third_party_plugins_never_displace_a_builtin_adapter(monkeypatch, caplog):
    @hookimpl
    def takes_sdxl(register):
        register(AdapterSpec("sdxl", description="third-party"))

    @hookimpl
    def other(register):
        register(AdapterSpec("othername"))

    # "a-sdxl" sorts before "sdxl"; "sd15" is a built-in's entry-point name
    _fake_entry_points(monkeypatch, **{"a-sdxl": {"pladis_register_adapters": takes_sdxl},
                                       "sd15": {"pladis_register_adapters": other}})
    with caplog.at_level(logging.WARNING, logger="pladis.registry"):
        adapters = collect_adapters(make_plugin_manager(autoload=True))
    assert adapters["sdxl"].distribution == "pladis-adapter-sdxl" and adapters["sdxl"].spec.description != "third-party"
    assert adapters["sd15"].distribution == "pladis-adapter-sd15" and "othername" not in adapters
    assert "skipping adapter plugin 'a-sdxl' whose registration failed" in caplog.text
    assert "skipping adapter plugin 'sd15' of pladis_fake_sd15: that name is taken by pladis-adapter-sd15" in caplog.text


def test_a_plugin_named_as_the_readme_advises_is_still_third_party(monkeypatch, caplog):
    @hookimpl
    def takes_sdxl(register):
        register(AdapterSpec("sdxl", description="third-party"))

    _fake_entry_points(monkeypatch, dist="pladis-adapter-flux", prefix="pladis_adapter_",  # as the built-ins
                       flux={"pladis_register_adapters": takes_sdxl})
    with caplog.at_level(logging.WARNING, logger="pladis.registry"):
        adapters = collect_adapters(make_plugin_manager(autoload=True))
    assert adapters["sdxl"].distribution == "pladis-adapter-sdxl" and "skipping adapter plugin 'flux'" in caplog.text


def test_the_builtin_distributions_are_the_repositorys_adapters():
    import tomllib
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    names = {tomllib.loads(p.read_text())["project"]["name"] for p in root.glob("adapters/*/pyproject.toml")}
    assert names == set(reg.manager.BUILTIN_DISTRIBUTIONS)
