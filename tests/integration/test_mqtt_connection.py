"""The MQTT adapter against a real Mosquitto: will, birth, TCP_NODELAY, errors, TLS."""

from __future__ import annotations

import asyncio
import logging
import subprocess
import tempfile
from pathlib import Path

import pytest

from countis_bridge.app import read_retained
from countis_bridge.mqtt import BrokerConnectionError, BrokerOptions, MqttConnection, TlsOptions

AVAILABILITY = "countis/bridge/availability"


async def test_birth_nodelay_publish_subscribe_and_clean_offline(mosquitto, mqtt_recorder):
    options = BrokerOptions(host=mosquitto.host, port=mosquitto.port)
    async with MqttConnection(options, availability_topic=AVAILABILITY) as connection:
        assert connection.tcp_nodelay
        await mqtt_recorder.wait_for(AVAILABILITY, lambda m: m.payload == b"online")
        await connection.subscribe("countis/+/set/+")
        connection.publish_nowait("countis/x/state", b'{"a":1}')
        await connection.publish_json("countis/x/json", {"b": 2.5})
        assert (await mqtt_recorder.wait_for("countis/x/state")).payload == b'{"a":1}'
        assert (await mqtt_recorder.wait_for("countis/x/json")).json() == {"b": 2.5}
        mqtt_recorder.publish("countis/m/set/tariff", "2")
        incoming = await asyncio.wait_for(anext(connection.messages()), 5)
        assert (incoming.topic, incoming.payload, incoming.retain) == (
            "countis/m/set/tariff",
            b"2",
            False,
        )
        mark = mqtt_recorder.mark()
    message = await mqtt_recorder.wait_for(AVAILABILITY, after=mark)
    assert message.payload == b"offline"
    retained = await mqtt_recorder.retained()
    assert retained[AVAILABILITY] == b"offline"
    assert retained["countis/x/state"] == b'{"a":1}'


async def test_a_stop_during_a_subscribe_logs_no_error(mosquitto, mqtt_recorder, caplog):
    """Stopped before the broker's SUBACK arrives (a stop right after start): no ERROR."""
    options = BrokerOptions(host=mosquitto.host, port=mosquitto.port)
    for _ in range(5):
        caplog.clear()
        async with MqttConnection(options, availability_topic=AVAILABILITY) as connection:
            request = asyncio.create_task(connection.subscribe("countis/+/set/+"))
            await asyncio.sleep(0)  # the SUBSCRIBE is on its way
            request.cancel()
            with pytest.raises(asyncio.CancelledError):
                await request
        errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
        assert errors == [], [r.getMessage() for r in errors]


async def test_lost_broker_is_a_broker_connection_error(mosquitto):
    options = BrokerOptions(host=mosquitto.host, port=mosquitto.port)
    async with MqttConnection(options, availability_topic=AVAILABILITY) as connection:
        messages = connection.messages()
        mosquitto.stop()
        with pytest.raises(BrokerConnectionError):
            await asyncio.wait_for(anext(messages), 5)
        with pytest.raises(BrokerConnectionError):
            connection.publish_nowait("countis/x/state", b"{}")


async def test_no_broker_is_a_broker_connection_error(bridge_harness):
    options = BrokerOptions(host="127.0.0.1", port=bridge_harness.free_port(), timeout=2)
    with pytest.raises(BrokerConnectionError, match="cannot connect to MQTT broker"):
        async with MqttConnection(options, availability_topic=AVAILABILITY):
            pass


def test_missing_tls_files_are_a_clear_error(tmp_path):
    options = BrokerOptions(tls=TlsOptions(ca_file=str(tmp_path / "missing-ca.pem")))

    async def connect() -> None:
        async with MqttConnection(options, availability_topic=AVAILABILITY):
            pass

    with pytest.raises(BrokerConnectionError, match="MQTT TLS files"):
        asyncio.run(connect())


@pytest.fixture
def tls_files():
    """A self-signed certificate for 127.0.0.1, readable by the broker's own user.

    Mosquitto started as root drops to its ``mosquitto`` user, which cannot enter pytest's
    private temporary directories, hence a world-readable directory of its own.
    """
    with tempfile.TemporaryDirectory(prefix="countis-tls-") as name:
        directory = Path(name)
        directory.chmod(0o755)
        cert, key = directory / "broker.pem", directory / "broker.key"
        subprocess.run(
            [
                *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"),
                *("-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"),
                *("-keyout", str(key), "-out", str(cert)),
            ],
            check=True,
            capture_output=True,
        )
        key.chmod(0o644)
        yield cert, key


async def test_tls_with_a_private_ca(tls_files, mosquitto, bridge_harness, make_recorder):
    cert, key = tls_files
    tls_port = bridge_harness.free_port()
    mosquitto.stop()
    mosquitto.config.write_text(
        mosquitto.config.read_text()
        + f"listener {tls_port} 127.0.0.1\ncertfile {cert}\nkeyfile {key}\n"
    )
    mosquitto.start()
    recorder = make_recorder(mosquitto.host, mosquitto.port)
    options = BrokerOptions(host="127.0.0.1", port=tls_port, tls=TlsOptions(ca_file=str(cert)))
    async with MqttConnection(options, availability_topic=AVAILABILITY) as connection:
        assert connection.tcp_nodelay
        await recorder.wait_for(AVAILABILITY, lambda m: m.payload == b"online")
        # The app's health check logs in as the bridge does: over TLS, with the same CA.
        seen = await asyncio.to_thread(read_retained, options, AVAILABILITY, timeout=5)
        assert seen == b"online"
    # Without the CA the broker's certificate is refused.
    untrusted = BrokerOptions(host="127.0.0.1", port=tls_port, tls=TlsOptions(), timeout=3)
    with pytest.raises(BrokerConnectionError):
        async with MqttConnection(untrusted, availability_topic=AVAILABILITY):
            pass
