"""Reading TOML configuration into validated, frozen objects.

Shared by every WellSense service (standard library only, so the gateway can
use it). Every error names the file and the option, for example
``gateway.toml: [mqtt] url: expected mqtts://HOST:PORT``. Secrets are read from
the environment or from files that only their owner can read, and never
appear in an error message.
"""

from __future__ import annotations

import builtins
import math
import os
import stat
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

T = TypeVar("T")


class ConfigError(ValueError):
    """A configuration file or option that cannot be used; the message says why."""


#: Tables and arrays nested deeper than this are refused (no config needs more than 4).
MAX_TOML_DEPTH = 16
MAX_TOML_BYTES = 4 * 1024 * 1024


def toml_problem(data: Any, max_depth: int = MAX_TOML_DEPTH) -> str | None:
    """Why parsed TOML is unusable (a non-finite number, too deep), or None.

    TOML allows ``nan`` and ``inf``; they pass every range check (every
    comparison with NaN is false), so ``retry_max_s = nan`` would make a tight
    retry loop. No WellSense option is meant to be non-finite.
    """
    stack: list[tuple[Any, str, int]] = [(data, "", 0)]
    while stack:
        value, where, depth = stack.pop()
        if depth > max_depth:
            return f"{where or 'the file'}: nested deeper than {max_depth} levels"
        if isinstance(value, float) and not math.isfinite(value):
            return f"{where}: {value} is not a finite number"
        if isinstance(value, dict):
            stack.extend(
                (v, f"{where}.{k}" if where else str(k), depth + 1) for k, v in value.items()
            )
        elif isinstance(value, list):
            stack.extend((v, f"{where}[{i}]", depth + 1) for i, v in enumerate(value))
    return None


def parse_toml(text: str) -> dict[str, Any]:
    """``tomllib.loads`` that also refuses non-finite numbers and deep nesting.

    Raises ``tomllib.TOMLDecodeError`` for invalid TOML and ``ValueError``
    (with a message fit for the user) for the rest; never RecursionError.
    """
    if len(text) > MAX_TOML_BYTES:
        raise ValueError(f"larger than {MAX_TOML_BYTES} bytes")
    try:
        data = tomllib.loads(text)
    except RecursionError:
        raise ValueError(f"nested deeper than {MAX_TOML_DEPTH} levels") from None
    problem = toml_problem(data)
    if problem is not None:
        raise ValueError(problem)
    return data


def load_toml(path: Path) -> dict[str, Any]:
    try:
        return parse_toml(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such configuration file") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not valid TOML: not UTF-8 text") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    except ValueError as exc:
        raise ConfigError(f"{path}: {exc}") from None


class Section:
    """Typed access to one table of a config file that remembers where it is."""

    def __init__(self, path: Path, name: builtins.str, data: Mapping[str, Any]) -> None:
        self.path = path
        self.name = name
        self._data = data
        self._used: set[str] = set()

    def has(self, key: builtins.str) -> bool:
        return key in self._data

    def error(self, key: builtins.str, problem: builtins.str) -> ConfigError:
        return ConfigError(f"{self.path}: [{self.name}] {key}: {problem}")

    def _get(self, key: builtins.str, kind: type[T] | tuple[type, ...], default: Any) -> Any:
        self._used.add(key)
        if key not in self._data:
            if default is _REQUIRED:
                raise self.error(key, "is required")
            return default
        value = self._data[key]
        kinds = kind if isinstance(kind, tuple) else (kind,)
        if isinstance(value, bool) and bool not in kinds:
            raise self.error(key, f"expected {_names(kinds)}, got a boolean")
        if not isinstance(value, kinds):
            raise self.error(key, f"expected {_names(kinds)}, got {type(value).__name__}")
        return value

    def str(self, key: builtins.str, default: Any = None) -> Any:
        return self._get(key, builtins.str, _REQUIRED if default is ... else default)

    def bool(self, key: builtins.str, default: Any = None) -> Any:
        return self._get(key, bool, _REQUIRED if default is ... else default)

    def int(
        self,
        key: builtins.str,
        default: Any = None,
        *,
        lo: int | None = None,
        hi: int | None = None,
    ) -> Any:
        value = self._get(key, int, _REQUIRED if default is ... else default)
        if value is not None:
            _check_range(self, key, value, lo, hi)
        return value

    def float(
        self,
        key: builtins.str,
        default: Any = None,
        *,
        lo: float | None = None,
        hi: float | None = None,
    ) -> Any:
        value = self._get(key, (int, float), _REQUIRED if default is ... else default)
        if value is not None:
            value = float(value)
            if not math.isfinite(value):  # NaN passes every range check
                raise self.error(key, f"{value} is not a finite number")
            _check_range(self, key, value, lo, hi)
        return value

    def choice(
        self, key: builtins.str, choices: tuple[builtins.str, ...], default: Any = None
    ) -> Any:
        value = self.str(key, default)
        if value is not None and value not in choices:
            raise self.error(key, f"{value!r} is not one of {', '.join(choices)}")
        return value

    def path_value(self, key: builtins.str, default: Any = None) -> Path | None:
        value = self.str(key, default)
        if value is None:
            return None
        p = Path(value).expanduser()
        return p if p.is_absolute() else (self.path.parent / p)

    def table(self, key: builtins.str) -> Section:
        value = self._get(key, dict, {})
        return Section(self.path, f"{self.name}.{key}" if self.name else key, value)

    def tables(self, key: builtins.str) -> list[Section]:
        """An array of tables (``[[key]]``)."""
        value = self._get(key, list, [])
        out = []
        for i, item in enumerate(value):
            if not isinstance(item, dict):
                raise self.error(key, f"entry {i + 1} is not a table")
            out.append(Section(self.path, f"{key}#{i + 1}", item))
        return out

    def reject_unknown(self) -> None:
        """Fail on options nobody read: a typo must not silently fall back to a default."""
        unknown = sorted(set(self._data) - self._used)
        if unknown:
            raise self.error(unknown[0], "unknown option")


_REQUIRED = object()


def _names(kinds: tuple[type, ...]) -> str:
    names = {
        "str": "a string",
        "int": "an integer",
        "float": "a number",
        "bool": "true or false",
        "dict": "a table",
        "list": "a list",
    }
    return " or ".join(dict.fromkeys(names.get(k.__name__, k.__name__) for k in kinds))


def _check_range(
    section: Section, key: str, value: float, lo: float | None, hi: float | None
) -> None:
    if lo is not None and value < lo:
        raise section.error(key, f"{value} is below the minimum {lo}")
    if hi is not None and value > hi:
        raise section.error(key, f"{value} is above the maximum {hi}")


def read_secret(section: Section, key: str, env_var: str) -> str | None:
    """A secret from ``env_var`` or from the file named by option ``<key>_file``.

    The file must not be readable by group or others (0600 or tighter), like
    ssh refuses a loose private key: a secret is only as safe as its file.
    """
    from_env = os.environ.get(env_var)
    file_path = section.path_value(f"{key}_file")
    if section.has(key):
        raise section.error(key, f"secrets are not allowed inline; use {key}_file or ${env_var}")
    if from_env:
        return from_env
    if file_path is None:
        return None
    try:
        mode = file_path.stat().st_mode
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise section.error(
                f"{key}_file", f"{file_path} is readable by others; run: chmod 600 {file_path}"
            )
        secret = file_path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        raise section.error(f"{key}_file", f"{file_path} does not exist") from None
    except OSError as exc:
        raise section.error(f"{key}_file", f"cannot read {file_path}: {exc.strerror}") from None
    if not secret:
        raise section.error(f"{key}_file", f"{file_path} is empty")
    return secret


@dataclass(frozen=True, slots=True)
class MqttSettings:
    """How to reach the broker. ``password`` is never printed (``repr=False``)."""

    host: str
    port: int
    tls: bool
    username: str | None
    ca_file: Path | None
    client_cert_file: Path | None
    client_key_file: Path | None
    keepalive_s: int
    password: str | None = None

    def __repr__(self) -> str:
        return (
            f"MqttSettings(host={self.host!r}, port={self.port}, tls={self.tls}, "
            f"username={self.username!r}, password={'***' if self.password else None})"
        )


def mqtt_settings(section: Section) -> MqttSettings:
    """Parse a ``[mqtt]`` table: url, username, password (env/file), TLS files."""
    url = section.str("url", os.environ.get("WELLSENSE_MQTT_URL", ...))
    parts = urlsplit(url)
    if parts.scheme not in ("mqtts", "mqtt") or not parts.hostname:
        raise section.error("url", f"expected mqtts://HOST:PORT, got {url!r}")
    if parts.username or parts.password:
        raise section.error("url", "must not carry credentials; use username and password_file")
    tls = parts.scheme == "mqtts"
    allow_plain = section.bool("allow_plaintext", False)
    if not tls and not allow_plain:
        raise section.error("url", "plain mqtt:// is refused; use mqtts:// (TLS)")
    try:
        port = parts.port or (8883 if tls else 1883)
    except ValueError:
        raise section.error("url", f"bad port in {url!r}") from None
    ca = section.path_value("ca_file", os.environ.get("WELLSENSE_MQTT_CA"))
    cert = section.path_value("client_cert_file")
    key = section.path_value("client_key_file")
    if (cert is None) != (key is None):
        raise section.error("client_cert_file", "client_cert_file and client_key_file go together")
    for name, p in (("ca_file", ca), ("client_cert_file", cert)):
        if p is not None and not p.is_file():
            raise section.error(name, f"{p} does not exist")
    settings = MqttSettings(
        host=parts.hostname,
        port=port,
        tls=tls,
        username=section.str("username", os.environ.get("WELLSENSE_MQTT_USERNAME")),
        ca_file=ca,
        client_cert_file=cert,
        client_key_file=key,
        keepalive_s=section.int("keepalive_s", 30, lo=5, hi=3600),
        password=read_secret(section, "password", "WELLSENSE_MQTT_PASSWORD"),
    )
    return settings
