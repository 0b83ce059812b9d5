"""s2r command-line interface. It wires the stages (sim → domain_rand → policies → deploy → firmware_bridge)
and holds no logic of its own."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("s2r")
except PackageNotFoundError:  # running from a source tree without install
    __version__ = "0.0.0+src"
