"""The staff dashboard: who needs attention, alerts to acknowledge, a page per participant.

Server-rendered (Starlette + Jinja2, served by uvicorn), no scripts or
assets from elsewhere: CSS is served by the app itself and plots are inline
SVG drawn on the server (:mod:`processing.research.svg`). Modules:

* :mod:`.settings`: the ``--config`` TOML;
* :mod:`.accounts`: users (argon2id hashes), sessions, the append-only audit
  log and alert acknowledgements, in one SQLite file (0600);
* :mod:`.data`: what the pages show, read from InfluxDB with a read-only token;
* :mod:`.app`: routes, roles, CSRF and cookies;
* :mod:`.cli`: ``wellsense dashboard`` and ``wellsense dashboard user add|passwd|list``.
"""
