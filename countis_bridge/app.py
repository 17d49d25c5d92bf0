"""Home Assistant app (formerly "add-on") entrypoint: options + the Supervisor's broker -> bridge.

The Supervisor writes the user's options to ``/data/options.json`` and hands the container a
token for its API; the Mosquitto broker app registers the broker's address and credentials as
the ``mqtt`` service (``GET http://supervisor/services/mqtt``). :func:`main` turns both into
the bridge's YAML settings, optionally starts an emulated meter, and replaces itself
(``exec``) with ``countis-bridge run --config FILE`` so the bridge is the container's main
process and gets the Supervisor's stop signal directly.

``python -m countis_bridge.app health`` is the container's health check: healthy while the
broker holds ``online`` on ``<base>/bridge/availability`` (the bridge's birth message; its
last will says ``offline``).

Paths and the Supervisor URL can be overridden by environment variables for tests:
``COUNTIS_ADDON_OPTIONS`` (options file), ``COUNTIS_ADDON_DATA`` (persistent data
directory), ``COUNTIS_ADDON_RUN_DIR`` (where the generated settings go) and
``COUNTIS_SUPERVISOR_URL``. Only the standard library is used up to the ``exec``.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from countis.errors import ConfigError, CountisError

from countis_bridge import topics
from countis_bridge.ports import MQTT_PORT, free_port, port_open

if TYPE_CHECKING:
    import paho.mqtt.client as paho
    from paho.mqtt.properties import Properties
    from paho.mqtt.reasoncodes import ReasonCode

    from countis_bridge.mqtt import BrokerOptions

_LOGGER = logging.getLogger("countis_bridge.app")

OPTIONS_ENV = "COUNTIS_ADDON_OPTIONS"
DATA_ENV = "COUNTIS_ADDON_DATA"
RUN_DIR_ENV = "COUNTIS_ADDON_RUN_DIR"
SUPERVISOR_URL_ENV = "COUNTIS_SUPERVISOR_URL"
#: Set by the Supervisor in every app container (the name of a variable, not a secret).
TOKEN_ENV = "SUPERVISOR_TOKEN"  # noqa: S105
#: Our own variables; removed before the exec so the bridge's COUNTIS_* settings never see them.
ADDON_ENV = (OPTIONS_ENV, DATA_ENV, RUN_DIR_ENV, SUPERVISOR_URL_ENV)

DEFAULT_OPTIONS = Path("/data/options.json")
DEFAULT_DATA = Path("/data")
# /run is private to the container and not part of backups: the generated settings hold
# the broker password, which the Supervisor hands out afresh at every start anyway.
DEFAULT_RUN_DIR = Path("/run/countis-bridge")
DEFAULT_SUPERVISOR_URL = "http://supervisor"

SETTINGS_FILE = "countis-bridge.yaml"
EMULATED_METER_NAME = "Emulated meter"
# Pinned here, not left to the emulator's default: the serial is the device's identity in
# Home Assistant, so it must not change with an update of the app.
EMULATED_METER_SERIAL = "21170A0100001"
EMULATOR_STATE_FILE = "emulator-state.json"


@dataclass(frozen=True, slots=True, kw_only=True)
class Broker:
    """Where the bridge finds its MQTT broker (the Supervisor's answer, or the override)."""

    host: str
    port: int = MQTT_PORT
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    tls: bool = False


# --- pure: options and Supervisor answers -> settings -------------------------------------
#
# The app's options are the bridge's settings under the same names: they are mapped onto
# the settings document here and validated once, by the bridge's own settings
# (countis_bridge.settings), so a bad option gets the same one-line message a bad YAML
# file would. The Supervisor checks them against config.yaml's schema before that.

#: Options copied to every meter (the app sets them for all meters at once).
SHARED_METER_OPTIONS = ("realtime_interval", "energy_interval")
#: Options copied to the settings' mqtt section.
MQTT_OPTIONS = ("base_topic", "discovery_prefix", "discovery_mode", "per_value_topics")


def _present(raw: Mapping[str, Any]) -> dict[str, Any]:
    """A mapping without its empty optional fields (the UI sends null or "" for them)."""
    return {key: value for key, value in raw.items() if value is not None and value != ""}


def mqtt_override(options: Mapping[str, Any]) -> Broker | None:
    """The broker named in the ``mqtt`` option; None: ask the Supervisor."""
    raw = options.get("mqtt")
    if not isinstance(raw, Mapping) or not raw.get("host"):
        return None
    given = _present(raw)
    return Broker(
        host=str(given["host"]),
        port=given.get("port", MQTT_PORT),
        username=str(given["username"]) if "username" in given else None,
        password=str(given["password"]) if "password" in given else None,
    )


#: The name of the app's one tariff plan in the settings.
APP_PLAN = "app"


def app_tariff_plan(options: Mapping[str, Any]) -> dict[str, Any] | None:
    """The tariff plan of the flat ``tariff_*`` options, as the settings take it."""
    mode = options.get("tariff_mode", "none")
    if mode == "signal":
        mapping = options.get("tariff_signal_mapping") or []
        return {
            "mode": "signal",
            "topic": options.get("tariff_signal_topic", ""),
            "mapping": {
                m.get("payload"): m.get("tariff") for m in mapping if isinstance(m, Mapping)
            },
        }
    if mode != "schedule":
        return None
    plan: dict[str, Any] = {
        "mode": "schedule",
        "default": options.get("tariff_default", "T1"),
        "rules": options.get("tariff_rules") or [],
        "holidays": options.get("tariff_holidays") or [],
    }
    if options.get("tariff_time_zone"):  # else the settings take the system's: HA's (TZ)
        plan["time_zone"] = options["tariff_time_zone"]
    if options.get("tariff_holiday_tariff", "default") != "default":
        plan["holiday_tariff"] = options["tariff_holiday_tariff"]
    return plan


def _meter(raw: Any, plan: bool) -> Any:
    """A meter of the options as the settings take it (plan: it follows the app's plan)."""
    if not isinstance(raw, Mapping):
        return raw  # the settings' validation names the problem
    meter = _present(raw)
    follows = meter.pop("follow_tariff_plan", True)
    if plan and follows:
        meter["tariff_plan"] = APP_PLAN
    return meter


def settings_document(
    options: Mapping[str, Any],
    broker: Broker,
    *,
    data_dir: Path,
    emulator_port: int | None = None,
) -> dict[str, Any]:
    """The bridge's settings (the YAML file's content) for these options and broker."""
    given = options.get("meters") or []
    if not isinstance(given, list):
        given = [given]  # not a list: the settings' validation names the problem
    plan = app_tariff_plan(options)
    meters = [_meter(m, plan is not None) for m in given]
    if emulator_port is not None:
        emulated = {"name": EMULATED_METER_NAME, "host": "127.0.0.1", "port": emulator_port}
        meters.append(_meter(emulated, plan is not None))
    if not meters:
        raise ConfigError("no meters: add a meter to the app's meters option, or turn on emulate")
    shared = {k: options[k] for k in SHARED_METER_OPTIONS if k in options}
    mqtt: dict[str, Any] = {
        "host": broker.host,
        "port": broker.port,
        "username": broker.username,
        "password": broker.password,
        "client_id": "countis-bridge-app",
        **{k: options[k] for k in MQTT_OPTIONS if k in options},
    }
    if broker.tls:
        mqtt["tls"] = {"enabled": True}
    document: dict[str, Any] = {
        "mqtt": mqtt,
        "meters": [{**m, **shared} if isinstance(m, Mapping) else m for m in meters],
        "data_dir": str(data_dir / "countis-bridge"),
        "log_level": str(options.get("log_level", "info")).upper(),
    }
    if plan is not None:
        document["tariff_plans"] = {APP_PLAN: plan}
    return document


def validate(document: Mapping[str, Any]) -> None:
    """Check the settings as the bridge will (ConfigError naming the option)."""
    from countis_bridge.settings import settings_from_mapping  # noqa: PLC0415

    try:
        settings_from_mapping(document)
    except ConfigError as err:
        raise ConfigError(str(err).replace("invalid setting ", "invalid app option ", 1)) from err


def parse_mqtt_service(payload: object) -> Broker:
    """The broker from the Supervisor's ``GET /services/mqtt`` answer.

    The answer is ``{"result": "ok", "data": {"host", "port", "ssl", "protocol",
    "username", "password", "addon"}}``; errors are ``{"result": "error", "message"}``.
    """
    if not isinstance(payload, Mapping):
        raise ConfigError("Supervisor MQTT service: the answer is not a JSON object")
    if payload.get("result") != "ok":
        reason = payload.get("message") or "no MQTT service"
        raise ConfigError(f"Supervisor MQTT service: {reason}")
    data = payload.get("data")
    if not isinstance(data, Mapping) or not data.get("host"):
        raise ConfigError("Supervisor MQTT service: no broker host in the answer")
    port = data.get("port", MQTT_PORT)
    if isinstance(port, bool) or not isinstance(port, int | str) or not str(port).isdigit():
        raise ConfigError(f"Supervisor MQTT service: bad port {port!r}")
    return Broker(
        host=str(data["host"]),
        port=int(port),
        username=str(data["username"]) if data.get("username") else None,
        password=str(data["password"]) if data.get("password") else None,
        tls=bool(data.get("ssl", False)),
    )


# --- I/O -----------------------------------------------------------------------------------


def read_options(path: Path) -> dict[str, Any]:
    """The options file the Supervisor wrote (a JSON object)."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"app options not found: {path}") from None
    except (OSError, ValueError) as err:
        raise ConfigError(f"cannot read app options {path}: {err}") from err
    if not isinstance(raw, dict):
        raise ConfigError(f"app options {path}: expected a JSON object")
    return raw


def fetch_mqtt_service(
    base_url: str, token: str, *, attempts: int = 6, delay: float = 5.0, timeout: float = 10.0
) -> Broker:
    """Ask the Supervisor for the MQTT service; retries while the broker app starts."""
    request = urllib.request.Request(  # noqa: S310 - the Supervisor's URL (http by design)
        f"{base_url.rstrip('/')}/services/mqtt",
        headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
    )
    problem = "no answer"
    for attempt in range(1, attempts + 1):
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
                return parse_mqtt_service(json.loads(response.read()))
        except urllib.error.HTTPError as err:
            if err.code in (401, 403):
                raise ConfigError(
                    f"Supervisor refused the MQTT service request (HTTP {err.code})"
                ) from err
            # 400 = no MQTT service yet (the broker app is not running) or a Supervisor
            # hiccup: both can pass while Home Assistant boots.
            problem = _error_message(err)
        except (urllib.error.URLError, OSError, ValueError, ConfigError) as err:
            problem = str(getattr(err, "reason", err))
        if attempt < attempts:
            _LOGGER.warning(
                "MQTT service not available yet (%s), retrying in %.0f s", problem, delay
            )
            time.sleep(delay)
    raise ConfigError(
        f"no MQTT broker from the Supervisor ({problem}): install and start the Mosquitto"
        " broker app, or set the app's mqtt option"
    )


def _error_message(err: urllib.error.HTTPError) -> str:
    try:
        body = json.loads(err.read())
    except (OSError, ValueError):
        body = None
    message = body.get("message") if isinstance(body, dict) else None
    return f"HTTP {err.code}" + (f": {message}" if message else "")


def resolve_broker(options: Mapping[str, Any], env: Mapping[str, str]) -> Broker:
    """The override from the options, else the Supervisor's MQTT service."""
    override = mqtt_override(options)
    if override is not None:
        _LOGGER.info("using the MQTT broker of the app options: %s", override.host)
        return override
    token = env.get(TOKEN_ENV)
    if not token:
        raise ConfigError(
            f"{TOKEN_ENV} is not set (not running as a Home Assistant app?):"
            " set the app's mqtt option to name a broker"
        )
    broker = fetch_mqtt_service(env.get(SUPERVISOR_URL_ENV, DEFAULT_SUPERVISOR_URL), token)
    _LOGGER.info("using the MQTT broker of the Supervisor: %s:%s", broker.host, broker.port)
    return broker


def write_settings(settings: Mapping[str, Any], run_dir: Path) -> Path:
    """Write the settings for the bridge (JSON is YAML), readable by us only."""
    run_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = run_dir / SETTINGS_FILE
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        json.dump(settings, out, indent=2)
        out.write("\n")
    return path


def _die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    """Linux: get SIGTERM when the parent dies, so the emulator never outlives the bridge.

    The parent keeps its PID across our exec, so the exec itself does not count.
    """
    try:
        import ctypes  # noqa: PLC0415

        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig, sigterm = 1, 15
        libc.prctl(pr_set_pdeathsig, sigterm)
    except (OSError, AttributeError):
        pass


def start_emulator(
    port: int, state_file: Path, log_level: str, *, wait: float = 20.0
) -> subprocess.Popen[bytes]:
    """Start an emulated COUNTIS E28 on 127.0.0.1:``port`` and wait until it listens."""
    command = [
        sys.executable, "-m", "countis_bridge", "--log-level", log_level.upper(), "emulate",
        "--host", "127.0.0.1", "--port", str(port), "--state-file", str(state_file),
        "--serial", EMULATED_METER_SERIAL, "--model", "E28",
    ]  # fmt: skip
    process = subprocess.Popen(command, preexec_fn=_die_with_parent)  # noqa: S603, PLW1509
    deadline = time.monotonic() + wait
    while True:
        if port_open(port, timeout=0.5):
            _LOGGER.info("emulated meter listening on 127.0.0.1:%d", port)
            return process
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise CountisError(f"the emulated meter did not start on port {port}")
        time.sleep(0.1)


def bridge_command(settings_file: Path, log_level: str) -> list[str]:
    """The command line the app execs: the bridge daemon with the generated settings."""
    return [
        sys.executable, "-m", "countis_bridge", "--log-level", log_level.upper(),
        "run", "--config", str(settings_file),
    ]  # fmt: skip


def prepare(env: Mapping[str, str]) -> tuple[list[str], dict[str, str]]:
    """Everything before the exec: the bridge's command line and environment."""
    options = read_options(Path(env.get(OPTIONS_ENV, DEFAULT_OPTIONS)))
    data_dir = Path(env.get(DATA_ENV, DEFAULT_DATA))
    run_dir = Path(env.get(RUN_DIR_ENV, DEFAULT_RUN_DIR))
    broker = resolve_broker(options, env)
    emulator_port = free_port() if options.get("emulate") else None
    settings = settings_document(options, broker, data_dir=data_dir, emulator_port=emulator_port)
    validate(settings)
    settings_file = write_settings(settings, run_dir)
    log_level = settings["log_level"]
    if emulator_port is not None:
        data_dir.mkdir(parents=True, exist_ok=True)
        start_emulator(emulator_port, data_dir / EMULATOR_STATE_FILE, log_level)
    child_env = {k: v for k, v in env.items() if k not in ADDON_ENV}
    return bridge_command(settings_file, log_level), child_env


def run(env: Mapping[str, str]) -> NoReturn:
    """Prepare, then become the bridge (``exec``: same PID, signals go straight to it)."""
    command, child_env = prepare(env)
    _LOGGER.info("starting the bridge: %s", " ".join(command[1:]))
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(command[0], command, child_env)  # noqa: S606


# --- health check ----------------------------------------------------------------------------


def health(env: Mapping[str, str], *, timeout: float = 10.0) -> int:
    """0 when the broker holds ``online`` for the bridge, else 1 (Docker HEALTHCHECK)."""
    # The daemon extra: the bridge's own settings and broker options.
    from countis_bridge.daemon import broker_options  # noqa: PLC0415
    from countis_bridge.settings import load_settings  # noqa: PLC0415

    settings_file = Path(env.get(RUN_DIR_ENV, DEFAULT_RUN_DIR)) / SETTINGS_FILE
    settings = load_settings(settings_file)
    topic = topics.bridge_availability(settings.mqtt.base_topic)
    state = read_retained(broker_options(settings), topic, timeout=timeout)
    if state == b"online":
        return 0
    print(f"unhealthy: {topic} is {state!r}", file=sys.stderr)
    return 1


def read_retained(broker: BrokerOptions, topic: str, *, timeout: float) -> bytes | None:
    """The retained payload of ``topic`` (``None`` if none arrives within ``timeout``).

    A plain paho subscriber: the bridge's MqttConnection would announce itself on a topic,
    which a probe must not do. It logs in as the bridge does (credentials, TLS context).
    """
    import threading  # noqa: PLC0415

    import paho.mqtt.client as paho  # noqa: PLC0415
    from paho.mqtt.enums import CallbackAPIVersion  # noqa: PLC0415

    from countis_bridge.mqtt import tls_context  # noqa: PLC0415

    got: list[bytes] = []
    done = threading.Event()
    client = paho.Client(callback_api_version=CallbackAPIVersion.VERSION2)
    if broker.username:
        client.username_pw_set(broker.username, broker.password)
    if broker.tls is not None:
        client.tls_set_context(tls_context(broker.tls))
        client.tls_insecure_set(broker.tls.insecure)

    def on_connect(
        c: paho.Client, _u: object, _f: object, rc: ReasonCode, _p: Properties | None
    ) -> None:
        if not rc.is_failure:
            c.subscribe(topic, qos=0)
        else:
            done.set()

    def on_message(_c: paho.Client, _u: object, message: paho.MQTTMessage) -> None:
        if message.retain:
            got.append(bytes(message.payload))
        done.set()

    client.on_connect = on_connect
    client.on_message = on_message
    try:
        client.connect(broker.host, broker.port, keepalive=30)
    except OSError as err:
        print(f"unhealthy: MQTT broker {broker.host}:{broker.port}: {err}", file=sys.stderr)
        return None
    client.loop_start()
    try:
        done.wait(timeout)
    finally:
        client.disconnect()
        client.loop_stop()
    return got[0] if got else None


# --- command line ----------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m countis_bridge.app`` (start the bridge) or ``... health`` (health check)."""
    args = list(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    command = args[0] if args else "run"
    if command == "health":
        # Docker reads any exit status but 0 as unhealthy (and reserves 2): never raise.
        try:
            return health(os.environ)
        except Exception as err:  # a health check reports problems, it never crashes
            print(f"unhealthy: {err}", file=sys.stderr)
            return 1
    try:
        if command == "run":
            run(os.environ)
    except CountisError as err:
        print(f"countis-bridge app: error: {err}", file=sys.stderr)
        return 2 if isinstance(err, ConfigError) else 1
    print(f"usage: python -m countis_bridge.app [run|health] (got {command!r})", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
