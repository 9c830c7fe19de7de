"""Researcher access: query, export, offline recompute, reports and self-report calibration.

Modules (each imports only what its job needs):

* ``settings``: where the data is (InfluxDB URL, org, bucket, token, study, time zone);
* ``flux`` and ``store``: the query API, returning pandas DataFrames;
* ``export`` and ``omh``: CSV, Parquet and Open mHealth JSON, streamed by
  participant and time chunk;
* ``recompute``: the service's features recomputed offline from exported raw data;
* ``passive``: daily passive summaries (sleep, activity, HRV) for pairing and reports;
* ``selfreport`` and ``agreement``: questionnaire/EMA import, pairing with the
  passive features, Bland-Altman and repeated-measures correlation;
* ``svg`` and ``report``: the self-contained HTML participant report;
* ``cli_*``: the ``wellsense query|export|report|selfreport`` subcommands.

Nothing here imports MQTT.
"""
