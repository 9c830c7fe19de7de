"""WellSense processing: MQTT -> validation -> features -> InfluxDB 2.x."""
