# Use the settings printed by `make services-up` from Python
# (run `eval "$(make -s services-env)"` first, or paste the export lines).
import os
import ssl

import paho.mqtt.client as mqtt
from influxdb_client import InfluxDBClient
from paho.mqtt.enums import CallbackAPIVersion

env = os.environ
with InfluxDBClient(url=env["WELLSENSE_INFLUX_URL"], token=env["WELLSENSE_INFLUX_TOKEN"],
                    org=env["WELLSENSE_INFLUX_ORG"]) as influx:
    buckets = [b.name for b in influx.buckets_api().find_buckets().buckets]
    assert env["WELLSENSE_INFLUX_BUCKET"] in buckets
    print("influx ok:", influx.version())

host, port = env["WELLSENSE_MQTT_URL"].removeprefix("mqtts://").rsplit(":", 1)
client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
client.tls_set(ca_certs=env["WELLSENSE_MQTT_CA"], tls_version=ssl.PROTOCOL_TLS_CLIENT)
client.username_pw_set(env["WELLSENSE_MQTT_USERNAME"], env["WELLSENSE_MQTT_PASSWORD"])
client.connect(host, int(port))
client.loop_start()
client.publish("wellsense/v1/demo/p-example/hr", b"{}", qos=1).wait_for_publish(10)
client.disconnect()
client.loop_stop()
print("mqtt ok")
