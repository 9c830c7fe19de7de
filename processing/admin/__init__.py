"""Study administration: broker access, InfluxDB set-up, enrolment, erasure, notices.

Standard library plus paho-mqtt only (no NumPy, no InfluxDB client): these
tools run on the server but must stay small and auditable.
"""
