"""s2r's system layer, on top of every stage: the command line (``s2r.cli``, ``s2r.commands``: wiring, no logic),
hardware-in-the-loop (``s2r.hil``: board, controller and link faults as separate processes) and the demo
(``s2r.demo``). The layers below are listed in pyproject.toml's import-linter contract."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("s2r")
except PackageNotFoundError:  # running from a source tree without install
    __version__ = "0.0.0+src"
