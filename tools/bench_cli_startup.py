"""Start-up time of the ``pladis`` command line (target: ``pladis --help`` and ``pladis plugins`` in ≤ 1 s),
side by side with a bare interpreter and with ``import torch`` (what a command that runs pays on top).

    .venv/bin/python tools/bench_cli_startup.py [--repeat 5]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

CASES = {
    "python -c pass": [sys.executable, "-c", "pass"],
    "pladis --help": [sys.executable, "-m", "pladis", "--help"],
    "pladis plugins": [sys.executable, "-m", "pladis", "plugins"],
    "pladis generate --help": [sys.executable, "-m", "pladis", "generate", "--help"],
    "python -c 'import torch'": [sys.executable, "-c", "import torch"],
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    base = None
    print(f"{'command':<28} {'median s':>9} {'vs python':>10}")
    for name, argv in CASES.items():
        times = []
        for _ in range(args.repeat):
            start = time.perf_counter()
            subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            times.append(time.perf_counter() - start)
        median = statistics.median(times)
        base = base or median
        print(f"{name:<28} {median:>9.3f} {median / base:>9.1f}x")


if __name__ == "__main__":
    main()
