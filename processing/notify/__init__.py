"""Alert delivery: rule recipients -> Apprise URLs, through a durable SQLite queue.

* :mod:`.settings` reads the ``[notify]`` table (recipients and where their
  delivery URLs come from: 0600 files or the environment, never the TOML);
* :mod:`.outbox` is the queue: one row per (alert event, recipient, target),
  a unique key so an event is delivered at most once per recipient, retries
  with exponential backoff, digests;
* :mod:`.lease` makes exactly one worker of a study the rules runner;
* :mod:`.dispatch` sends what is due with Apprise and reports the status;
* :mod:`.leader` ties them to the rules runner of ``wellsense process``.
"""
