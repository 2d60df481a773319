"""Keep the wire samples of the chosen protocol: tests/_samples/<protocol>/ becomes tests/samples/."""

from __future__ import annotations

import shutil
from pathlib import Path

# fmt: off
PROTOCOL = "{{ cookiecutter.protocol }}"  # one of the choices in cookiecutter.json: no quoting needed
# fmt: on


def main() -> None:
    tests = Path.cwd() / "tests"
    staging = tests / "_samples"
    shutil.move(staging / PROTOCOL, tests / "samples")
    shutil.rmtree(staging)


if __name__ == "__main__":
    main()
