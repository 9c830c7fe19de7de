"""Passive behavioural and physiological markers: pure NumPy/SciPy, arrays in, numbers out.

One module per domain: ``rr_clean`` (artefacts, gaps, quality), ``hrv``,
``heart_rate``, ``night_hrv`` (nocturnal ln RMSSD), ``activity``,
``adherence``, ``circadian``, ``sleep``, ``baseline``; ``pipeline``
orchestrates a minute-activity file, ``catalog`` is the registry
docs/features.md is generated from, ``cli`` is ``wellsense features``.
Nothing here imports MQTT or InfluxDB.
"""
