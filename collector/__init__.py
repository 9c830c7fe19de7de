"""WellSense gateway collector: BLE wearables -> durable outbox -> MQTT.

Imports only the standard library at package level; bleak and paho-mqtt are
imported by the modules that need them, so parsing and the wire contract run
anywhere.
"""
