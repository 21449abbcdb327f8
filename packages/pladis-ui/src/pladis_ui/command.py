"""``pladis ui``: serve the local web page (light module: heavy imports happen inside :func:`run`)."""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "a local web page: PLADIS off vs on, λ × α sweeps, attention maps"
DESCRIPTION = """Serve a web page on this machine that generates with the model loaded once: the same seed with
PLADIS off and on side by side (as `pladis compare`), a λ × α sweep grid (as `pladis sweep`) and per-token
cross-attention maps off vs on (as `pladis maps`), each image with its JSON sidecar to download. Requests
run one at a time in arrival order. The page binds to 127.0.0.1 (this machine only) unless --host says
otherwise; it needs no network. Images and sidecars are written under --out, one folder per request.
Example: pladis ui --port 7860"""

DEFAULT_HOST, DEFAULT_PORT = "127.0.0.1", 7860


def port_value(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer port") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"ports are in [0, 65535] (0 = any free port); got {text}")
    return value


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    from pladis.cli import _options

    parser = subparsers.add_parser("ui", help=HELP, description=DESCRIPTION,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    _options.add_model_options(parser)
    group = parser.add_argument_group("server")
    group.add_argument("--host", default=DEFAULT_HOST, metavar="ADDRESS",
                       help=f"address to bind (default: {DEFAULT_HOST}, this machine only; 0.0.0.0 exposes the "
                            "page to the network)")
    group.add_argument("--port", type=port_value, default=DEFAULT_PORT, metavar="N",
                       help=f"TCP port (default: {DEFAULT_PORT}; 0 = any free port)")
    group.add_argument("--out", type=Path, default=Path("outputs/ui"), metavar="DIR",
                       help="folder for the images and sidecars of every request (default: outputs/ui)")
    group.add_argument("--backend", choices=_options.BACKEND_CHOICES, default="auto",
                       help="PLADIS attention implementation, as in the other commands (default: auto)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from .engine import Engine
    from .server import start_server

    engine = Engine.load(args)
    server = start_server(engine, args.host, args.port)
    host, port = server.server_address[:2]
    print(f"pladis ui: {engine.describe_model()}", flush=True)
    print(f"pladis ui: serving http://{host}:{port}/ — {bind_note(args.host)}; Ctrl-C stops it", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        engine.close()
    return 0


def bind_note(host: str) -> str:
    """What binding to ``host`` means for who can open the page."""
    if host in ("127.0.0.1", "localhost", "::1"):
        return f"bound to {host}, reachable from this machine only"
    return f"bound to {host}: reachable from other machines on the network (no authentication)"
