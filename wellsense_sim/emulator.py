"""The fake BlueZ: an adapter ``hci0`` and simulated wearables on a D-Bus.

Behaviour copied from BlueZ where bleak depends on it:

- ``GetManagedObjects`` on ``/`` (dbus-fast answers it from the exports);
- discovery sessions are per D-Bus client: a second ``StartDiscovery`` from
  the same client fails with ``org.bluez.Error.InProgress``, and sessions of
  clients that leave the bus are dropped (as are their notify sessions);
- while discovering, devices in range "advertise": their ``RSSI`` changes,
  which is what makes bleak's scanner report them;
- ``Connect`` exports the GATT objects and only then sets
  ``ServicesResolved``; a disconnect clears ``ServicesResolved``, removes
  the GATT objects and finally sets ``Connected`` to false;
- notifications are ``PropertiesChanged`` of a characteristic's ``Value``,
  sent only while some client has called ``StartNotify``;
- a device out of range disappears from the bus (like BlueZ expiring a
  temporary device), so scans miss it and ``Connect`` fails.

Everything runs on one asyncio loop. Time comes from a :class:`SimClock`.
Heart Rate Measurements follow each strap's own cadence
(:mod:`wellsense_sim.strap`: 1 s of the sensor's drifting clock by default,
independent of the beats, with BLE latency and lost notifications) at any
time compression: a notification is delivered when the sim clock reaches its
arrival time, so at ``time_scale`` 720 a strap sends 720 notifications per
real second (if D-Bus cannot take them that fast, deliveries wait for
its backlog to drain and are counted late). Only the Running Speed and
Cadence and battery updates are
stepped: at most ``max_notify_hz`` per device, each covering a longer span
of simulated time when time is compressed (they carry states, not events).

With a truth log (``truth_log``), every Heart Rate Measurement is written
as one JSON line once its fate is known: ``address``, ``connection`` (1, 2,
... per device), ``index`` (per connection), ``sent_ns``, ``received_ns``
(true times), ``rr_ms`` and ``beat_ns`` (the true time of the beat ending
each RR value), ``contact`` and ``fate``: ``delivered`` (with
``delivered_ns``, the sim time it went out on D-Bus), ``lost`` (on the air)
or ``undelivered`` (in flight when the connection ended).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import random
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, Any

from dbus_fast import BusType, Message, MessageType, Variant
from dbus_fast.aio import MessageBus
from dbus_fast.constants import NameFlag, RequestNameReply

from wellsense_sim import bluez
from wellsense_sim.clock import SimClock, SimClockParams
from wellsense_sim.motion import MotionModel
from wellsense_sim.pmd_frames import encode_delta_frame
from wellsense_sim.pmd_service import ACC, PPI, PmdServiceModel, polar_h10_offer, verity_sense_offer
from wellsense_sim.strap import StrapCadence
from wellsense_sim.wearable import HrNotification, Wearable, WearableConfig

logger = logging.getLogger(__name__)

ADAPTER_PATH = "/org/bluez/hci0"
CONTROL_NAME = "org.wellsense.Sim"
#: Cap on RSC and battery updates per device and real second (not heart rate).
DEFAULT_MAX_NOTIFY_HZ = 20.0
#: Simulated seconds between RSC updates at normal speed (sensors notify ~1 Hz).
BASE_SPAN_S = 1.0
#: A delivery later than this (sim time) after its arrival time counts as late.
LATE_MS = 50.0

# (service uuid16, handle, [(char uuid16, handle, flags)])
_GATT_LAYOUT: tuple[tuple[str, int, tuple[tuple[str, int, tuple[str, ...]], ...]], ...] = (
    ("180d", 0x000A, (("2a37", 0x000B, ("notify",)), ("2a38", 0x000E, ("read",)))),
    ("180f", 0x0010, (("2a19", 0x0011, ("read", "notify")),)),
    ("180a", 0x0014, (("2a29", 0x0015, ("read",)), ("2a24", 0x0017, ("read",)),
                      ("2a25", 0x0019, ("read",)), ("2a26", 0x001B, ("read",)))),
    ("1814", 0x0020, (("2a53", 0x0021, ("notify",)), ("2a54", 0x0024, ("read",)))),
)
PMD_SERVICE = "fb005c80-02e7-f387-1cad-8acd2d8df0c8"
PMD_CP = "fb005c81-02e7-f387-1cad-8acd2d8df0c8"
PMD_DATA = "fb005c82-02e7-f387-1cad-8acd2d8df0c8"
MOTION_SERVICE = "00030000-78fc-48fe-8e23-433b3a1942d0"
STEP_COUNT = "00030001-78fc-48fe-8e23-433b3a1942d0"
RAW_MOTION = "00030002-78fc-48fe-8e23-433b3a1942d0"
#: Extra services per simulated device model (``WearableConfig.device``).
_Layout = tuple[tuple[str, int, tuple[tuple[str, int, tuple[str, ...]], ...]], ...]
_MODEL_LAYOUT: dict[str, _Layout] = {
    "polar_h10": ((PMD_SERVICE, 0x0030, ((PMD_CP, 0x0031, ("read", "write", "indicate")),
                                          (PMD_DATA, 0x0034, ("notify",)))),),
    "polar_verity": ((PMD_SERVICE, 0x0030, ((PMD_CP, 0x0031, ("read", "write", "indicate")),
                                            (PMD_DATA, 0x0034, ("notify",)))),),
    "pinetime": ((MOTION_SERVICE, 0x0040, ((STEP_COUNT, 0x0041, ("read", "notify")),
                                           (RAW_MOTION, 0x0044, ("read", "notify")))),),
}
#: ACC samples per PMD frame (the H10 sends ~36 at 50 Hz within a 244-octet MTU).
ACC_FRAME_SAMPLES = 36
#: Sensor clock of Polar devices: ns since 2000-01-01 UTC.
_POLAR_EPOCH_NS = 946_684_800 * 1_000_000_000


@dataclass(slots=True)
class DeviceStats:
    """Counters of one simulated device (also served as JSON over D-Bus)."""

    address: str
    name: str
    connected: bool = False
    in_range: bool = True
    connects: int = 0
    disconnects: int = 0
    connect_failures: int = 0
    hr_notifications: int = 0  # delivered over D-Bus
    rr_values: int = 0  # RR values in delivered notifications
    hr_lost: int = 0  # lost on the air (configured loss)
    hr_undelivered: int = 0  # in flight when the connection ended
    late_deliveries: int = 0  # delivered more than LATE_MS (sim) after their arrival time
    max_delivery_lag_ms: float = 0.0  # sim time, delivery after arrival time
    backpressure_waits: int = 0  # deliveries put off because D-Bus had a backlog
    rsc_notifications: int = 0
    pmd_requests: int = 0
    acc_frames: int = 0
    ppi_frames: int = 0
    step_notifications: int = 0
    last_disconnect_reason: str = ""


class CharacteristicState:
    """One characteristic: value, flags and notify sessions per D-Bus client."""

    def __init__(self, device: DeviceState, uuid16: str, path: str, service_path: str,
                 flags: tuple[str, ...], reader: Callable[[], bytes] | None) -> None:
        self.device = device
        self.uuid = bluez.uuid128(uuid16)
        self.path = path
        self.service_path = service_path
        self.flags = flags
        self.value = b""
        self._reader = reader
        self._sessions: set[str] = set()
        self.iface = bluez.GattCharacteristic1(self)

    @property
    def notifying(self) -> bool:
        """Whether any client has notifications on."""
        return bool(self._sessions)

    def read(self, offset: int) -> bytes:
        """Answer ``ReadValue``."""
        if "read" not in self.flags:
            raise bluez.bluez_error("NotPermitted", "Read not permitted")
        if not self.device.connected:
            raise bluez.bluez_error("NotConnected", "Not Connected")
        if self._reader is not None:
            self.value = self._reader()
        if offset > len(self.value):
            raise bluez.bluez_error("InvalidArguments", "Invalid offset")
        return self.value[offset:]

    def start_notify(self) -> None:
        """Answer ``StartNotify`` for the calling client."""
        if "notify" not in self.flags and "indicate" not in self.flags:
            raise bluez.bluez_error("NotSupported", "Operation is not supported")
        sender = self.device.emulator.current_sender
        if sender in self._sessions:
            raise bluez.bluez_error("InProgress", "Operation already in progress")
        was = self.notifying
        self._sessions.add(sender)
        if not was:
            self.iface.emit_properties_changed({"Notifying": True})
            self.device.notifying_changed(self, True)

    def stop_notify(self) -> None:
        """Answer ``StopNotify`` for the calling client."""
        sender = self.device.emulator.current_sender
        if sender not in self._sessions:
            raise bluez.bluez_error("Failed", "No notify session started")
        self.drop_session(sender)

    def drop_session(self, sender: str | None = None) -> None:
        """End one client's notify session, or all of them."""
        was = self.notifying
        if sender is None:
            self._sessions.clear()
        else:
            self._sessions.discard(sender)
        if was and not self.notifying:
            self.iface.emit_properties_changed({"Notifying": False})
            self.device.notifying_changed(self, False)

    def write(self, value: bytes) -> None:
        """Answer ``WriteValue`` (with response)."""
        if "write" not in self.flags:
            raise bluez.bluez_error("NotPermitted", "Write not permitted")
        if not self.device.connected:
            raise bluez.bluez_error("NotConnected", "Not Connected")
        self.device.written(self, value)

    def notify(self, value: bytes) -> None:
        """Send a notification (a ``Value`` change) if anyone listens."""
        self.value = value
        if self._sessions:
            self.iface.emit_properties_changed({"Value": value})


class DeviceState:
    """One simulated wearable as BlueZ shows it."""

    def __init__(self, emulator: Emulator, config: WearableConfig) -> None:
        self.emulator = emulator
        self.config = config
        self.adapter_path = ADAPTER_PATH
        self.path = f"{ADAPTER_PATH}/dev_{config.address.replace(':', '_')}"
        self.wearable = Wearable(config, emulator.clock.now_ns())
        self.stats = DeviceStats(config.address, config.name)
        self.rssi_dbm = config.rssi_dbm
        self.connected = False
        self.services_resolved = False
        self.iface = bluez.Device1(self)
        self._rng = random.Random(f"{config.seed}:radio")
        self._exported = False
        self._connecting = False
        self._fail_next = 0
        self._back_handle: asyncio.TimerHandle | None = None
        self._last_battery = -1
        self._services: list[tuple[str, bluez.GattService1]] = []
        self.chars: dict[str, CharacteristicState] = {}
        #: the strap's schedule while someone listens to heart rate
        self.cadence: StrapCadence | None = None
        self.connection = 0
        self._inflight: deque[HrNotification] = deque()
        #: the device model's PMD control point (Polar models) and motion state
        offers = {"polar_h10": polar_h10_offer, "polar_verity": verity_sense_offer}
        self.pmd = (PmdServiceModel(offers[config.device]())
                    if config.device in offers else None)
        self.motion = MotionModel(self.wearable.model, config.seed)
        self._acc_next_ns: int | None = None  # sim time of the next ACC sample
        self._steps = 0.0
        self._steps_sent = -1
        self._build_gatt()

    def _build_gatt(self) -> None:
        static = self.wearable.static_values()
        readers: dict[str, Callable[[], bytes]] = {
            uuid: functools.partial(bytes, value) for uuid, value in static.items()}
        readers["2a19"] = lambda: bytes(
            [self.wearable.battery_pct(self.emulator.clock.now_ns())])
        if self.pmd is not None:
            readers[PMD_CP] = self.pmd.feature_value
        readers[STEP_COUNT] = lambda: int(self._steps).to_bytes(4, "little")
        readers[RAW_MOTION] = lambda: self._raw_motion(self.emulator.clock.now_ns())
        for svc_uuid, handle, chars in _GATT_LAYOUT + _MODEL_LAYOUT.get(self.config.device, ()):
            if svc_uuid == "1814" and not self.config.rsc:
                continue
            svc_path = f"{self.path}/service{handle:04x}"
            self._services.append((svc_path, bluez.GattService1(bluez.uuid128(svc_uuid),
                                                                 self.path)))
            for uuid, char_handle, flags in chars:
                path = f"{svc_path}/char{char_handle:04x}"
                self.chars[uuid] = CharacteristicState(self, uuid, path, svc_path, flags,
                                                       readers.get(uuid))

    def advertised_uuids(self) -> list[str]:
        """Service UUIDs in the advertisement (128-bit, lowercase)."""
        return [bluez.uuid128(u) for u, _, _ in _GATT_LAYOUT
                if u != "1814" or self.config.rsc]

    # --- presence ----------------------------------------------------------
    def export(self) -> None:
        """Make the device visible (InterfacesAdded)."""
        if not self._exported and self.emulator.bus is not None:
            self.emulator.bus.export(self.path, self.iface)
            self._exported = True

    def unexport(self) -> None:
        """Remove the device from the bus (InterfacesRemoved)."""
        if self._exported and self.emulator.bus is not None:
            self.emulator.bus.unexport(self.path, self.iface)
        self._exported = False

    def out_of_range(self, seconds: float) -> None:
        """Drop any connection, vanish for ``seconds`` of real time, then return."""
        self.disconnect("connection timeout (out of range)")
        self.stats.in_range = False
        self.unexport()
        if self._back_handle is not None:
            self._back_handle.cancel()
        self._back_handle = asyncio.get_running_loop().call_later(seconds, self.back_in_range)
        logger.info("out of range", extra={"address": self.config.address, "seconds": seconds})

    def back_in_range(self) -> None:
        """Reappear on the bus."""
        self._back_handle = None
        self.stats.in_range = True
        self.export()
        logger.info("back in range", extra={"address": self.config.address})

    def fail_connects(self, count: int) -> None:
        """Make the next ``count`` connection attempts fail."""
        self._fail_next = count

    # --- connection ----------------------------------------------------------
    async def connect(self) -> None:
        """Answer ``Connect``: wait, connect, resolve services."""
        if self.connected:
            return
        if self._connecting:
            raise bluez.bluez_error("InProgress", "In Progress")
        self._connecting = True
        try:
            await asyncio.sleep(self.emulator.connect_delay_s)
        finally:
            self._connecting = False
        if not self.stats.in_range or self._fail_next > 0:
            self._fail_next = max(0, self._fail_next - 1)
            self.stats.connect_failures += 1
            raise bluez.bluez_error("Failed", "Software caused connection abort")
        bus = self.emulator.bus
        assert bus is not None
        self.connected = True
        self.stats.connected = True
        self.stats.connects += 1
        self.iface.emit_properties_changed({"Connected": True})
        for path, svc in self._services:
            bus.export(path, svc)
        for char in self.chars.values():
            bus.export(char.path, char.iface)
        # only now: bleak reads the GATT tree when this turns true
        self.services_resolved = True
        self.iface.emit_properties_changed({"ServicesResolved": True})
        logger.info("connected", extra={"address": self.config.address})

    def disconnect(self, reason: str) -> None:
        """Drop the connection (either side), the GATT objects and notify sessions."""
        if not self.connected:
            return
        bus = self.emulator.bus
        self.services_resolved = False
        self.iface.emit_properties_changed({"ServicesResolved": False})
        for char in self.chars.values():
            char.drop_session()
            if bus is not None:
                bus.unexport(char.path, char.iface)
        if self.pmd is not None:
            self.pmd.stop_all()  # a Polar sensor ends its streams with the link
        self._acc_next_ns = None
        if bus is not None:
            for path, svc in self._services:
                bus.unexport(path, svc)
        self.connected = False
        self.stats.connected = False
        self.stats.disconnects += 1
        self.stats.last_disconnect_reason = reason
        self.iface.emit_properties_changed({"Connected": False})
        logger.info("disconnected", extra={"address": self.config.address, "reason": reason})

    def drop_client(self, sender: str) -> None:
        """A D-Bus client left: end its notify sessions."""
        for char in self.chars.values():
            char.drop_session(sender)

    # --- PMD control point, ACC and PPI; InfiniTime motion ---------------------
    def written(self, char: CharacteristicState, value: bytes) -> None:
        """A client wrote ``value``: the PMD control point answers with an indication."""
        if self.pmd is None or char.uuid != PMD_CP:
            raise bluez.bluez_error("NotPermitted", "Write not permitted")
        self.stats.pmd_requests += 1
        was_acc = ACC in self.pmd.running
        answer = self.pmd.handle(value)
        char.notify(answer)
        if ACC in self.pmd.running and not was_acc:
            self._acc_next_ns = self.emulator.clock.now_ns()
        elif ACC not in self.pmd.running:
            self._acc_next_ns = None

    def _raw_motion(self, now_ns: int) -> bytes:
        x, y, z = self.motion.sample_mg(now_ns)
        return b"".join(max(-32768, min(32767, v)).to_bytes(2, "little", signed=True)
                        for v in (x, y, z))

    def _send_acc(self, now_ns: int) -> None:
        """ACC frames for the samples due by ``now_ns`` (whole frames only)."""
        if self.pmd is None or self._acc_next_ns is None:
            return
        settings = self.pmd.running.get(ACC)
        data = self.chars[PMD_DATA]
        if settings is None or not data.notifying:
            return
        period_ns = 1_000_000_000 / settings[0]
        frame_ns = round(ACC_FRAME_SAMPLES * period_ns)
        if now_ns - self._acc_next_ns > 60 * 1_000_000_000:  # fell far behind: a gap
            self._acc_next_ns = now_ns - frame_ns
        factor = self.pmd.offers[ACC].factor or 1.0
        while self._acc_next_ns + frame_ns <= now_ns:
            t0 = self._acc_next_ns
            times = [t0 + round(i * period_ns) for i in range(ACC_FRAME_SAMPLES)]
            samples = [tuple(round(v / factor) for v in self.motion.sample_mg(t))
                       for t in times]
            data.notify(encode_delta_frame(times[-1] - _POLAR_EPOCH_NS, samples))
            self.stats.acc_frames += 1
            self._acc_next_ns = t0 + frame_ns

    def _send_ppi(self, n: HrNotification) -> None:
        """Verity Sense: the beats of a strap notification as a PMD PPI frame."""
        if self.pmd is None or PPI not in self.pmd.running or not n.note.rr_ms:
            return
        data = self.chars[PMD_DATA]
        if not data.notifying:
            return
        flags = 0b110 if n.contact else 0b100  # skin contact supported (+ present)
        body = b"".join(
            bytes([min(255, round(60_000 / rr))]) + round(rr).to_bytes(2, "little")
            + (8).to_bytes(2, "little") + bytes([flags])
            for rr in n.note.rr_ms)
        sensor_ts = n.note.received_ns - _POLAR_EPOCH_NS
        data.notify(bytes([PPI]) + sensor_ts.to_bytes(8, "little") + b"\x00" + body)
        self.stats.ppi_frames += 1

    def _send_steps(self, now_ns: int) -> None:
        """PineTime: notify the step count when it changed, and the raw motion."""
        if STEP_COUNT not in self.chars:
            return
        steps = self.chars[STEP_COUNT]
        if steps.notifying and int(self._steps) != self._steps_sent:
            self._steps_sent = int(self._steps)
            steps.notify(self._steps_sent.to_bytes(4, "little"))
            self.stats.step_notifications += 1
        motion = self.chars[RAW_MOTION]
        if motion.notifying:
            motion.notify(self._raw_motion(now_ns))

    # --- heart rate on the strap's cadence -----------------------------------
    def notifying_changed(self, char: CharacteristicState, on: bool) -> None:
        """A characteristic's notifications turned on or off (for all clients)."""
        if char is not self.chars["2a37"]:
            return
        if on:
            self.connection += 1
            self.cadence = self.wearable.start_strap(self.emulator.clock.now_ns())
            return
        self.cadence = None
        for n in self._inflight:
            self.stats.hr_undelivered += 1
            self.emulator.truth(self, n, "undelivered")
        self._inflight.clear()

    def pump(self, now_ns: int) -> None:
        """Send what the strap's cadence has due by ``now_ns``; deliver what has arrived."""
        cadence = self.cadence
        if cadence is not None:
            while cadence.next_send_ns <= now_ns:
                n = self.wearable.strap_send(cadence)
                if n.note.lost:
                    self.stats.hr_lost += 1
                    self.emulator.truth(self, n, "lost")
                else:
                    self._inflight.append(n)
        hr = self.chars["2a37"]
        while self._inflight and self._inflight[0].note.received_ns <= now_ns:
            if self.emulator.bus_backlogged():
                self.stats.backpressure_waits += 1
                return  # D-Bus is not keeping up: deliver late rather than break the bus
            n = self._inflight.popleft()
            hr.notify(n.payload)
            self._send_ppi(n)
            self.stats.hr_notifications += 1
            self.stats.rr_values += len(n.note.rr_ms)
            lag_ms = (now_ns - n.note.received_ns) / 1e6
            if lag_ms > LATE_MS:
                self.stats.late_deliveries += 1
            self.stats.max_delivery_lag_ms = max(self.stats.max_delivery_lag_ms, lag_ms)
            self.emulator.truth(self, n, "delivered", now_ns)

    def next_event_ns(self) -> int | None:
        """Sim time of the next send or delivery (``None``: nothing scheduled)."""
        times = []
        if self.cadence is not None:
            times.append(self.cadence.next_send_ns)
        if self._inflight:
            times.append(self._inflight[0].note.received_ns)
        return min(times) if times else None

    # --- movement and battery (stepped) ---------------------------------------
    def step_body(self) -> None:
        """Advance movement to now; send RSC and battery changes."""
        now = self.emulator.clock.now_ns()
        span_s = max(0.0, (now - self.wearable.body_ns) / 1e9)
        rsc_payload = self.wearable.advance_body(now)
        if STEP_COUNT in self.chars:  # the watch counts steps whether connected or not
            self._steps += self.motion.steps_per_s(now) * span_s
        if not self.connected:
            return
        self._send_acc(now)
        self._send_steps(now)
        rsc = self.chars.get("2a53")
        if rsc is not None and rsc_payload is not None and rsc.notifying:
            rsc.notify(rsc_payload)
            self.stats.rsc_notifications += 1
        level = self.wearable.battery_pct(now)
        if level != self._last_battery:
            self._last_battery = level
            self.chars["2a19"].notify(bytes([level]))

    def advertise(self) -> None:
        """One advertisement while the adapter scans: a fresh RSSI."""
        if not self._exported or (self.connected and not self.config.advertise_while_connected):
            return
        step = self._rng.choice((-2, -1, 1, 2))
        # a mean-reverting walk around the configured RSSI; it must change to be reported
        new = round(0.8 * (self.rssi_dbm + step) + 0.2 * self.config.rssi_dbm)
        if new == self.rssi_dbm:
            new += 1 if step > 0 else -1
        self.rssi_dbm = max(-100, min(-20, new))
        self.iface.emit_properties_changed({"RSSI": self.rssi_dbm})


class AdapterState:
    """``hci0``: discovery sessions, keyed by D-Bus client."""

    def __init__(self, emulator: Emulator, address: str) -> None:
        self.emulator = emulator
        self.address = address
        self._sessions: dict[str, dict[str, Any]] = {}
        self._filters: dict[str, dict[str, Any]] = {}
        self.iface = bluez.Adapter1(self)

    @property
    def discovering(self) -> bool:
        """Whether any client is discovering."""
        return bool(self._sessions)

    def set_discovery_filter(self, properties: dict[str, Variant]) -> None:
        """Remember the caller's filter (the emulator does not apply it)."""
        self._filters[self.emulator.current_sender] = {k: v.value for k, v in properties.items()}

    def start_discovery(self) -> None:
        """Start a discovery session for the caller."""
        sender = self.emulator.current_sender
        if sender in self._sessions:
            raise bluez.bluez_error("InProgress", "Operation already in progress")
        was = self.discovering
        self._sessions[sender] = self._filters.get(sender, {})
        if not was:
            self.iface.emit_properties_changed({"Discovering": True})

    def stop_discovery(self) -> None:
        """Stop the caller's discovery session."""
        sender = self.emulator.current_sender
        if sender not in self._sessions:
            raise bluez.bluez_error("Failed", "No discovery started")
        self.drop_client(sender)

    def drop_client(self, sender: str) -> None:
        """End a client's discovery session (it stopped or left the bus)."""
        self._filters.pop(sender, None)
        if self._sessions.pop(sender, None) is not None and not self._sessions:
            self.iface.emit_properties_changed({"Discovering": False})

    def remove_device(self, path: str) -> None:
        """``RemoveDevice``: forget a device until it advertises again."""
        device = self.emulator.device_by_path(path)
        if device is None:
            raise bluez.bluez_error("DoesNotExist", "Does Not Exist")
        device.disconnect("removed")
        device.unexport()
        asyncio.get_running_loop().call_later(self.emulator.advert_interval_s, device.export)


class _NonBlockingSend:
    """A socket whose ``send`` reports a full buffer as 0 bytes written.

    dbus-fast's writer (like python-dbus-next's, issue 153 there) treats
    ``BlockingIOError`` from ``send`` as a broken connection and drops the
    bus. On a non-blocking socket it only means "nothing written yet": the
    writer then keeps its buffer and waits until the socket is writable,
    which is what it does after any partial write.
    """

    def __init__(self, sock: Any) -> None:
        self._sock = sock

    def send(self, data: Any) -> int:
        try:
            return int(self._sock.send(data))
        except BlockingIOError:
            return 0

    def sendmsg(self, *args: Any) -> int:
        try:
            return int(self._sock.sendmsg(*args))
        except BlockingIOError:
            return 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


def _survive_full_socket(bus: MessageBus) -> None:
    """Make the bus's writer wait on a full socket buffer instead of disconnecting."""
    writer = getattr(bus, "_writer", None)
    if writer is not None and hasattr(writer, "sock"):
        writer.sock = _NonBlockingSend(writer.sock)


class Emulator:
    """A fake ``org.bluez`` on a (private) bus, with simulated wearables.

    Use as ``async with Emulator(address) as emu: emu.add_wearable(...)``.
    The control methods (:meth:`disconnect`, :meth:`out_of_range`, ...) take a
    device address; :mod:`wellsense_sim.control` exposes the same methods on
    D-Bus for other processes.

    Args:
        bus_address: D-Bus address to serve on (``None``: the system bus).
        clock: simulated time; real time when ``None``.
        max_notify_hz: cap on RSC and battery updates per real second and
            device (heart rate follows the strap's own cadence instead).
        advert_interval_s: mean real time between advertisements while scanning.
        connect_delay_s: real time a ``Connect`` takes.
        adapter_address: address of ``hci0``.
        truth_log: write every Heart Rate Measurement's ground truth here
            (JSON lines, see the module docstring).
    """

    def __init__(
        self,
        bus_address: str | None,
        *,
        clock: SimClock | None = None,
        max_notify_hz: float = DEFAULT_MAX_NOTIFY_HZ,
        advert_interval_s: float = 0.5,
        connect_delay_s: float = 0.05,
        adapter_address: str = "00:1A:7D:DA:71:13",
        truth_log: str | Path | None = None,
    ) -> None:
        if max_notify_hz <= 0:
            raise ValueError("max_notify_hz must be > 0")
        self.bus_address = bus_address
        self.clock = clock or SimClock(SimClockParams.starting_now())
        self.max_notify_hz = max_notify_hz
        self.advert_interval_s = advert_interval_s
        self.connect_delay_s = connect_delay_s
        self.bus: MessageBus | None = None
        #: unique name of the client whose method call is being handled
        self.current_sender = ""
        self.adapter = AdapterState(self, adapter_address)
        self.devices: dict[str, DeviceState] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self.truth_log = Path(truth_log) if truth_log else None
        self._truth: IO[str] | None = None

    @property
    def body_span_s(self) -> float:
        """Simulated seconds covered by one RSC update."""
        return max(BASE_SPAN_S, self.clock.time_scale / self.max_notify_hz)

    @property
    def body_period_s(self) -> float:
        """Real seconds between two RSC updates of one device."""
        return self.body_span_s / self.clock.time_scale

    def bus_backlogged(self) -> bool:
        """Whether our D-Bus connection still has output waiting for the socket.

        The receivers (dbus-daemon, bleak) can fall behind straps notifying
        thousands of times per real second. Heart rate deliveries then wait
        for the backlog to drain (late deliveries, counted) rather than pile
        up in memory; see also :class:`_NonBlockingSend`.
        """
        writer = getattr(self.bus, "_writer", None)
        if writer is None:
            return False
        return getattr(writer, "buf", None) is not None or bool(getattr(writer, "messages", ()))

    def open_truth_log(self) -> None:
        """Start appending to the truth log (done by :meth:`start`)."""
        if self.truth_log is not None and self._truth is None:
            self._truth = self.truth_log.open("a", encoding="utf-8")

    def close_truth_log(self) -> None:
        """Flush and close the truth log (done by :meth:`stop`)."""
        if self._truth is not None:
            self._truth.close()
            self._truth = None

    def truth(self, device: DeviceState, n: HrNotification, fate: str,
              delivered_ns: int | None = None) -> None:
        """Write one notification's ground truth to the truth log, if any."""
        if self._truth is None:
            return
        note = n.note
        record: dict[str, Any] = {
            "address": device.config.address, "connection": device.connection,
            "index": note.index, "sent_ns": note.sent_ns, "received_ns": note.received_ns,
            "rr_ms": list(note.rr_ms), "beat_ns": list(note.beat_ns), "contact": n.contact,
            "fate": fate}
        if delivered_ns is not None:
            record["delivered_ns"] = delivered_ns
        self._truth.write(json.dumps(record, separators=(",", ":")) + "\n")

    # --- lifecycle ---------------------------------------------------------
    async def __aenter__(self) -> Emulator:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def start(self) -> None:
        """Connect, export hci0, own ``org.bluez`` and start ticking."""
        from wellsense_sim.control import SimControlInterface

        self.open_truth_log()
        if self.bus_address is None:
            bus = MessageBus(bus_type=BusType.SYSTEM)
        else:
            bus = MessageBus(bus_address=self.bus_address)
        await bus.connect()
        _survive_full_socket(bus)
        self.bus = bus
        bus.add_message_handler(self._on_message)
        await self._add_match(
            "type='signal',sender='org.freedesktop.DBus',interface='org.freedesktop.DBus',"
            "member='NameOwnerChanged'")
        bus.export(ADAPTER_PATH, self.adapter.iface)
        bus.export("/org/wellsense/sim", SimControlInterface(self))
        for device in self.devices.values():
            device.export()
        for name in (bluez.BLUEZ, CONTROL_NAME):
            reply = await bus.request_name(name, NameFlag.DO_NOT_QUEUE)
            if reply is not RequestNameReply.PRIMARY_OWNER:
                raise RuntimeError(f"could not own {name} on the bus: {reply.name}")
        self._tasks = [asyncio.create_task(self._ticker(), name="sim-ticker"),
                       asyncio.create_task(self._advertiser(), name="sim-advertiser")]
        logger.info("emulator started", extra={"bus": self.bus_address,
                                              "time_scale": self.clock.time_scale})

    async def stop(self) -> None:
        """Stop ticking and leave the bus."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        if self.bus is not None:
            self.bus.disconnect()
            with contextlib.suppress(Exception):
                await self.bus.wait_for_disconnect()
            self.bus = None
        self.close_truth_log()

    async def _add_match(self, rule: str) -> None:
        assert self.bus is not None
        reply = await self.bus.call(Message(
            destination="org.freedesktop.DBus", path="/org/freedesktop/DBus",
            interface="org.freedesktop.DBus", member="AddMatch", signature="s", body=[rule]))
        if reply is None or reply.message_type is MessageType.ERROR:
            raise RuntimeError(f"AddMatch failed: {reply and reply.body}")

    def _on_message(self, msg: Message) -> bool:
        # dbus-fast does not pass the caller to ServiceInterface methods; this
        # handler runs first, synchronously, for every message, so it records
        # the caller for the (synchronous) method handler that runs next.
        if msg.message_type is MessageType.METHOD_CALL:
            self.current_sender = msg.sender or ""
        elif (msg.message_type is MessageType.SIGNAL and msg.member == "NameOwnerChanged"
              and msg.sender == "org.freedesktop.DBus"):
            name, _old, new = msg.body
            if name.startswith(":") and not new:
                self._drop_client(name)
        return False  # never consume: let dbus-fast dispatch it

    def _drop_client(self, sender: str) -> None:
        self.adapter.drop_client(sender)
        for device in self.devices.values():
            device.drop_client(sender)

    async def _ticker(self) -> None:
        # One loop for every device: sleep until the next strap send or
        # delivery (sim time converted to real), or the next RSC step.
        loop = asyncio.get_running_loop()
        body_due = loop.time()
        scale = self.clock.time_scale
        while True:
            now = self.clock.now_ns()
            for device in list(self.devices.values()):
                try:
                    device.pump(now)
                except Exception:
                    logger.exception("pump failed", extra={"address": device.config.address})
            if loop.time() >= body_due:
                body_due += self.body_period_s
                if body_due < loop.time() - 5 * self.body_period_s:
                    body_due = loop.time()  # fell far behind (suspended): do not burst
                for device in list(self.devices.values()):
                    try:
                        device.step_body()
                    except Exception:
                        logger.exception("step failed", extra={"address": device.config.address})
                if self._truth is not None:
                    self._truth.flush()
            wait_s = body_due - loop.time()
            events = [t for d in self.devices.values() if (t := d.next_event_ns()) is not None]
            if events:
                wait_s = min(wait_s, (min(events) - self.clock.now_ns()) / 1e9 / scale)
            if self.bus_backlogged():
                wait_s = max(wait_s, 0.001)  # let the writer drain; do not spin
            await asyncio.sleep(max(0.0, min(wait_s, 0.1)))

    async def _advertiser(self) -> None:
        rng = random.Random("advertiser")
        while True:
            await asyncio.sleep(self.advert_interval_s * rng.uniform(0.5, 1.5))
            if self.adapter.discovering:
                for device in list(self.devices.values()):
                    device.advertise()

    # --- control API ---------------------------------------------------------
    def add_wearable(self, config: WearableConfig) -> DeviceState:
        """Add a simulated wearable; it is in range and not connected."""
        if config.address in self.devices:
            raise ValueError(f"a wearable with address {config.address} exists")
        device = DeviceState(self, config)
        self.devices[config.address] = device
        device.export()
        return device

    def remove_wearable(self, address: str) -> None:
        """Remove a wearable for good."""
        device = self.device(address)
        device.disconnect("removed")
        device.unexport()
        del self.devices[address.upper()]

    def device(self, address: str) -> DeviceState:
        """The wearable with this address (KeyError if unknown)."""
        try:
            return self.devices[address.upper()]
        except KeyError:
            raise KeyError(f"no simulated wearable {address}") from None

    def device_by_path(self, path: str) -> DeviceState | None:
        """The wearable behind a D-Bus object path, if any."""
        return next((d for d in self.devices.values() if d.path == path), None)

    def disconnect(self, address: str, reason: str = "remote user terminated connection") -> None:
        """Drop the connection now, as if the wearable did."""
        self.device(address).disconnect(reason)

    def out_of_range(self, address: str, seconds: float) -> None:
        """Disconnect, vanish from scans and refuse connections for ``seconds`` (real)."""
        self.device(address).out_of_range(seconds)

    def set_contact(self, address: str, on: bool | None) -> None:
        """Force skin contact on/off; ``None`` gives control back to the model."""
        self.device(address).wearable.contact_override = on

    def set_worn(self, address: str, worn: bool | None) -> None:
        """Put the strap on (True) or take it off (False); ``None``: the model decides."""
        self.device(address).wearable.worn_override = worn

    def set_battery(self, address: str, pct: float) -> None:
        """Set the battery level now; it keeps draining from there."""
        self.device(address).wearable.set_battery(pct, self.clock.now_ns())

    def fail_connects(self, address: str, count: int) -> None:
        """Make the next ``count`` ``Connect`` calls fail."""
        self.device(address).fail_connects(count)

    def stats(self) -> list[dict[str, Any]]:
        """Counters of every device."""
        return [asdict(d.stats) for d in self.devices.values()]
