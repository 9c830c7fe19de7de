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
