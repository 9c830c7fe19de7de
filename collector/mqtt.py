"""One way to make a paho-mqtt client from :class:`MqttSettings`.

Every WellSense MQTT client (gateway publisher, processing, rules, doctor,
admin tools) speaks MQTT v5 over TLS with the same credentials handling, so
a change here (a TLS option, client certificates) reaches all of them.
"""

from __future__ import annotations

import ssl

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from collector.tomlconfig import MqttSettings


def new_client(settings: MqttSettings, client_id: str, *, manual_ack: bool = False) -> mqtt.Client:
    """An unconnected MQTT v5 client with TLS and credentials set from ``settings``."""
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=client_id,
        protocol=mqtt.MQTTv5,
        manual_ack=manual_ack,
    )
    if settings.tls:
        client.tls_set(
            ca_certs=str(settings.ca_file) if settings.ca_file else None,
            certfile=str(settings.client_cert_file) if settings.client_cert_file else None,
            keyfile=str(settings.client_key_file) if settings.client_key_file else None,
            tls_version=ssl.PROTOCOL_TLS_CLIENT,
        )
    if settings.username:
        client.username_pw_set(settings.username, settings.password)
    return client


#: What a DISCONNECT reason from the broker means for us (MQTT v5 section 3.14.2.1).
_SERVER_REASONS = {
    0x8B: "the broker is shutting down",
    0x8E: "another client connected with our client id (session taken over)",
    0x87: "not authorised",
    0x8D: "keep-alive timeout at the broker",
    0x89: "the broker is busy",
    0x93: "receive maximum exceeded",
    0x95: "packet too large",
    0x97: "quota exceeded",
    0x98: "administrative action",
    0x9C: "use another server",
    0x9D: "the server moved",
}


def describe_disconnect(flags: object, rc: object) -> str:
    """A clear log message for paho's ``on_disconnect`` (callback API v2).

    paho reports a connection that the broker closed without a DISCONNECT
    packet as reason 0x80 "Unspecified error"; Mosquitto closes connections
    that way when it stops or restarts, so a clean broker shutdown looked like
    a failure in the logs. Measured with Mosquitto 2.0 and paho 2.1
    (``tests/unit/test_mqtt_disconnect.py`` documents the mapping).
    """
    value = getattr(rc, "value", None)
    name = str(rc)
    if getattr(flags, "is_disconnect_packet_from_server", False):
        meaning = _SERVER_REASONS.get(value if isinstance(value, int) else -1, name)
        return f"the broker disconnected us: {meaning} (reason 0x{value or 0:02x} {name})"
    if value == 0:
        return "disconnected on request"
    if value == 0x8D:
        return "no answer from the broker within the keep-alive interval (network or broker down)"
    if value == 0x82:
        return "protocol error on the connection"
    return (
        "connection lost: the broker closed it without a DISCONNECT (as Mosquitto does when "
        "it stops or restarts) or the network failed"
    )
