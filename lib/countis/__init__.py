"""countis: Socomec COUNTIS E27/E28 energy meters over Modbus TCP (async, standard library only)."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("countis")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0"
