"""``pladis plugins``: the discovered adapter plugins with distribution, version and backbones."""

from __future__ import annotations

import argparse
import json
from collections import defaultdict

from . import _commands

HELP = "list the discovered adapter plugins (and the commands plugins add)"
DESCRIPTION = """List the adapter plugins found through the `pladis.adapters` entry points: distribution,
version and the backbones each provides (use a backbone with --backbone), then the commands that plugins
add (entry points `pladis.plugins`, e.g. pladis-onnx's export-onnx). --verbose adds each backbone's
description, pipeline classes and presets; --json prints everything as JSON. Discovery honours
PLADIS_DISABLE_PLUGIN_AUTOLOAD=1 and PLADIS_PLUGINS=a,b."""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("plugins", help=HELP, description=DESCRIPTION)
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.add_argument("-v", "--verbose", action="store_true", help="describe every backbone")
    parser.set_defaults(run=run)


def collect() -> list[dict]:
    """One entry per plugin distribution: name, version, entry point and backbones (sorted)."""
    from pladis.adapters import default_registry

    plugins: dict[tuple[str, str, str], list] = defaultdict(list)
    for info in sorted(default_registry().adapters().values(), key=lambda i: i.name):
        plugins[info.distribution or "(unknown)", info.version or "", info.plugin].append(info.spec)
    return [
        {"distribution": dist, "version": version, "entry_point": plugin, "backbones": [
            {"name": spec.name, "description": spec.description, "pipeline_classes": list(spec.pipeline_classes),
             "presets": {name: preset.description for name, preset in spec.presets.items()},
             "default_preset": spec.default_preset, "generic": spec.generic}
            for spec in specs]}
        for (dist, version, plugin), specs in sorted(plugins.items())
    ]


def run(args: argparse.Namespace) -> int:
    plugins = collect()
    if args.json:
        print(json.dumps(plugins, indent=2))
        return 0
    if not plugins:
        print("no adapter plugins found (pip install 'pladis[all]'; is PLADIS_DISABLE_PLUGIN_AUTOLOAD set?)")
        return 0
    rows = [("DISTRIBUTION", "VERSION", "BACKBONES")]
    rows += [(p["distribution"], p["version"], ", ".join(b["name"] for b in p["backbones"])) for p in plugins]
    widths = [max(len(row[i]) for row in rows) for i in range(2)]
    for dist, version, backbones in rows:
        print(f"{dist:<{widths[0]}}  {version:<{widths[1]}}  {backbones}")
    extra = [info for info in _commands.commands().values() if info.name not in _commands.BUILTIN_COMMANDS]
    if extra:  # commands that plugins add (pladis-onnx's export-onnx, …)
        print()
        rows = [("COMMAND", "DISTRIBUTION")] + [(info.name, info.distribution or info.plugin) for info in extra]
        width = max(len(row[0]) for row in rows)
        for name, dist in rows:
            print(f"{name:<{width}}  {dist}")
    if args.verbose:
        for plugin in plugins:
            for backbone in plugin["backbones"]:
                print(f"\n{backbone['name']} ({plugin['distribution']} {plugin['version']})")
                print(f"  {backbone['description']}")
                if backbone["pipeline_classes"]:
                    print(f"  pipelines: {', '.join(backbone['pipeline_classes'])}")
                for name, text in backbone["presets"].items():
                    default = " (default)" if name == backbone["default_preset"] else ""
                    print(f"  preset {name}{default}: {text}")
    return 0
