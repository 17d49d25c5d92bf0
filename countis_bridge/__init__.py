"""countis-bridge: Socomec COUNTIS E27/E28 energy meters in Home Assistant, MQTT and Node-RED."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("countis-bridge")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0"

SUPPORT_URL = "https://github.com/countis-bridge/countis-bridge"
