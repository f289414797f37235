"""Station commands: ``hamsim devices STATION``, ``train --station ... --dry-run`` and ``emulate lab``.

The dry run builds every driver of the station on a *recording* link that sends nothing anywhere: the
drivers produce exactly the messages a session would send (their own formatting), and refuse a value outside
the hardware range or the station's limits before "sending" it -- the refusal names the instrument, channel
and value (exit 2).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import typer

from hamsim.errors import ValidationError


class RecordingLink:
    """A ScpiLink that opens nothing: records every message; answers queries like an idle instrument."""

    def __init__(self, name: str, idn: str = "") -> None:
        self.name, self.idn = name, idn
        self.sent: list[str] = []
        self._reply = b""
        self._points = 0

    def write_raw(self, data: bytes) -> None:
        text = bytes(data).decode("ascii", errors="replace").rstrip("\n")
        if "#" in text and not text.endswith("?"):
            head, _, _ = text.partition("#")
            text = f"{head}#<block of {len(data) - len(head) - 1} bytes>"
        self.sent.append(text)
        q = text.strip().upper()
        if q.startswith(":WAV:POIN ") and q[10:].strip().isdigit():
            self._points = int(q[10:])
        if q.endswith("?") or "? " in q:
            if q.startswith("SYST:ERR"):
                self._reply = b'+0,"No error"\n'
            elif q == "*IDN?":
                self._reply = self.idn.encode() + b"\n"
            elif q in ("*OPC?", ":TER?"):
                self._reply = b"1\n"
            elif q == ":WAV:PRE?":
                self._reply = f"+1,+0,+{self._points},+1,+1.0E-03,+0.0E+00,+0,+1.0E-04,+0.0E+00,+0".encode() + b"\n"
            elif q == ":WAV:DATA?":
                payload = bytes(2 * self._points)
                self._reply = b"#8" + str(len(payload)).rjust(8, "0").encode() + payload + b"\n"
            else:
                self._reply = b"0\n"

    def read_line(self) -> bytes:
        out, self._reply = self._reply, b""
        return out

    def read_exact(self, count: int) -> bytes:
        out, self._reply = self._reply[:count], self._reply[count:]
        return out

    def clear(self) -> None:
        self._reply = b""

    def close(self) -> None:
        pass


_IDN = {"keysight_33500b": "Keysight Technologies,33522B,DRYRUN,0", "keysight_infiniivision":
        "KEYSIGHT TECHNOLOGIES,DSOX3024T,DRYRUN,0", "keithley_2450": "KEITHLEY INSTRUMENTS,MODEL 2450,DRYRUN,0",
        "keysight_e36300": "Keysight Technologies,E36312A,DRYRUN,0", "qdevil_qdac2": "QDevil, QDAC-II, DRYRUN, 0"}


def dry_run_station(path: str, system: Any, dt: float, task: Any, cfg: Any) -> None:
    """Print every value and command a session on the station would send at its start and in its first
    forward shot, checked against the limits; ValidationError (exit 2) on the first violation."""
    from hamsim.drivers.errors import LimitError
    from hamsim.station import load_station, require_fit
    from hamsim.substrates.hardware.station import StationSubstrate, channel_limits, driver_for

    station = load_station(path)
    require_fit(station, system, cfg.trainable)
    typer.echo(f"  station {station.name} ({path}): {len(station.instruments)} instruments, "
               f"{len(station.roles)} role channels; nothing below is opened or sent")
    links: dict[str, RecordingLink] = {}
    drivers: dict[str, Any] = {}
    for name, entry in station.instruments.items():
        if entry.model == "auto":
            typer.echo(f"    {name}: model auto (detected from *IDN? when opened): its commands are not listed")
            continue
        links[name] = RecordingLink(name, _IDN.get(entry.model, ""))
        drivers[name] = driver_for(entry.model)(links[name], name=name, limits=channel_limits(station, name),
                                                sleep=lambda s: None)
    if len(drivers) < len(station.instruments):
        return
    try:
        sub = StationSubstrate(station, drivers, system, dt, trainable=cfg.trainable)
        b = task.train[0]
        K, B, d = b.u.shape
        phi0 = np.zeros((B, system.n)) if getattr(b, "state0", None) is None else np.asarray(b.state0.phi)
        pi0 = np.zeros((B, system.n)) if getattr(b, "state0", None) is None else np.asarray(b.state0.pi)
        for batch in task.train + task.val:  # every input of the task against the drive channels' limits
            for j, ref in enumerate(sub.drive):
                volts = station.channel(ref).to_volts(np.asarray(batch.u)[:, :, j])
                drivers[ref[0]].limits(ref[1]).check(volts, ref[0], f"drive[{j}] on channel {ref[1]}")
        sub.play_row(np.asarray(b.u)[:, 0], np.zeros((K, system.n)), phi0[0], pi0[0])
    except LimitError as exc:
        raise ValidationError("station", f"dry run: refused before sending: {exc}") from None
    for name, link in links.items():
        typer.echo(f"    {name} ({station.instruments[name].model} at {station.instruments[name].address}): "
                   f"{len(link.sent)} messages")
        for text in link.sent:
            if not text.upper().startswith("SYST:ERR?"):
                typer.echo(f"      {text}")
    typer.echo(f"  every value above lies inside its channel's limits; each later row repeats the shot commands "
               f"({B} rows per batch), nudges are checked against the nudge channels' limits when formed")


def devices_station(path: Path) -> int:
    """Open each address of the station, read *IDN?, compare model and channels; print a table."""
    import pyvisa

    from hamsim.station import detect_model_name, load_station, model_info

    station = load_station(path)
    rm = pyvisa.ResourceManager("@py")
    used: dict[str, set[int]] = {}
    for _, (iname, ch) in station.roles.items():
        used.setdefault(iname, set()).add(ch)
    rows, bad = [], 0
    for name, entry in station.instruments.items():
        status, idn = "ok", ""
        try:
            res = rm.open_resource(entry.address, read_termination=entry.termination,
                                   write_termination=entry.termination, timeout=int(entry.timeout * 1000))
            try:
                idn = str(res.query("*IDN?")).strip()
            finally:
                res.close()
        except Exception as exc:  # noqa: BLE001 - reported per instrument
            status = f"no answer ({type(exc).__name__})"
        if idn:
            found = detect_model_name(idn)
            if found is None:
                status = "unknown instrument"
            elif entry.model not in ("auto", found):
                status = f"is a {found}, the station says {entry.model}"
            else:
                from hamsim.drivers.instrument import Identity
                from hamsim.station import driver_class

                info = model_info(found)
                count = info.channels if info is not None else 0
                cls = driver_class(found)
                if cls is not None and hasattr(cls, "options_for"):  # the identity's own count (33521B: 1)
                    count = int(cls.options_for(Identity.parse(idn)).get("channels", count))
                top = max(used.get(name, {0}))
                if count and top > count:
                    status = f"channel {top} used, this {Identity.parse(idn).model} has {count}"
        bad += status != "ok"
        rows.append((name, entry.model, entry.address, idn or "-", status))
    w = [max(len(r[i]) for r in rows + [("instrument", "model", "address", "*IDN?", "status")]) for i in range(5)]
    for r in [("instrument", "model", "address", "*IDN?", "status"), *rows]:
        typer.echo("  ".join(c.ljust(w[i]) for i, c in enumerate(r)).rstrip())
    typer.echo(f"{len(rows) - bad} of {len(rows)} instruments answer as the station says")
    return 2 if bad else 0


def emulate_lab(system_name: str, station_out: Path | None, ideal: bool, seed: int,
                station: Path | None = None) -> None:
    """Run the emulated lab in the foreground; print every address (and write the station file).  With
    ``station``: the lab that file describes (its instruments, roles, calibration; its localhost ports when it
    names them), and ``station_out`` is that file with the emulators' addresses."""
    import sys
    import tomllib

    from hamsim.emulators.bench import BenchConfig
    from hamsim.emulators.lab import LabServer, default_layout, lab_station, layout_from_station
    from hamsim.emulators.systems import load_system
    from hamsim.station import dump_toml, load_station, require_fit

    if station_out is not None and station_out.exists():
        raise ValidationError("station_out", f"{station_out} exists; choose another path")
    h = load_system(system_name)
    ports: dict[str, int] = {}
    if station is not None:
        st = load_station(station)
        require_fit(st, h)
        layout, ports = layout_from_station(st)
    else:
        layout = default_layout(h)
    cfg = BenchConfig.ideal(seed=seed) if ideal else BenchConfig(seed=seed)
    server = LabServer(h, layout, config=cfg, ports=ports)
    for name, res in server.resources.items():
        typer.echo(f"{name:<8} {layout.instruments[name]:<24} {res}")
    if station_out is not None:
        if station is not None:
            data = tomllib.loads(station.read_text())
            for name, res in server.resources.items():
                data["instruments"][name]["address"] = res
        else:
            data = lab_station(layout, server.resources)
        station_out.write_text(dump_toml(data))
        typer.echo(f"ready: hamsim train --station {station_out}   (Ctrl-C stops)", err=True)
    else:
        typer.echo("ready (Ctrl-C stops); --station-out FILE writes the matching station file", err=True)
    sys.stdout.flush()
    try:
        server.serve()
    except KeyboardInterrupt:
        typer.echo("stopped", err=True)
