"""``hamsim emulate board|bench``: run a virtual device in the foreground and print its address.

    hamsim emulate board --system six_mass_toy            # pty; prints e.g. board:/dev/pts/7
    hamsim emulate board --transport tcp --port 7000      # board:socket://127.0.0.1:7000
    hamsim emulate bench --system six_mass_toy            # bench:127.0.0.1:AWG,DIG,DC
    hamsim emulate lab --station-out lab.toml             # ten real-model instruments; hamsim train --station lab.toml

Then ``hamsim train --substrate <printed address> --nudge-at forward``.  Ctrl-C stops the device.
Fault switches (``--fault drop=1 --fault late=1 --fault late_s=0.5``) rehearse error handling.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from hamsim.emulators.faults import parse_faults
from hamsim.emulators.systems import load_system
from hamsim.errors import ValidationError


def emulate_command(
    kind: Annotated[str, typer.Argument(help="board (serial FPGA board), bench (SCPI instruments, hamsim's own "
                                             "dialect) or lab (real-model instruments, one port each).")],
    system: Annotated[str, typer.Option(help="Preset (six_mass_toy, chain:N) or JSON system file.")] = "six_mass_toy",
    transport: Annotated[str, typer.Option(help="board: pty or tcp.")] = "pty",
    port: Annotated[int, typer.Option(help="TCP port (bench: first of three; 0 picks free ports).")] = 0,
    baud: Annotated[float, typer.Option(help="board: pace replies at this baud rate (0: unpaced).")] = 0.0,
    dt: Annotated[float, typer.Option(help="board: initial integration step.")] = 0.1,
    bits: Annotated[int, typer.Option(help="board: register width that saturates (0: 64 bit).")] = 0,
    noise: Annotated[float, typer.Option(help="board: thermal momentum noise density.")] = 0.0,
    mismatch: Annotated[float | None, typer.Option(help="Relative parameter / component mismatch.")] = None,
    ideal: Annotated[bool, typer.Option(help="bench: switch every non-ideality off.")] = False,
    q_factor: Annotated[float | None, typer.Option(help="bench: quality factor.")] = None,
    adc_noise: Annotated[float | None, typer.Option(help="bench: ADC input noise (V rms).")] = None,
    adc_bits: Annotated[int | None, typer.Option(help="bench: ADC resolution (0: ideal).")] = None,
    dac_bits: Annotated[int | None, typer.Option(help="bench: DAC resolution (0: ideal).")] = None,
    drift: Annotated[float | None, typer.Option(help="bench: relative random walk of the elements per sqrt(s) played.")] = None,
    readout_offset: Annotated[float | None, typer.Option(help="bench: bound of the digitizer channels' DC offsets (V).")] = None,
    bias_scale: Annotated[float | None, typer.Option(help="bench: the circuit's true volts per parameter unit (the host assumes 0.5).")] = None,
    seed: Annotated[int, typer.Option(help="Seed of every random non-ideality.")] = 0,
    fault: Annotated[list[str] | None, typer.Option(help="Fault switch NAME=VALUE (repeatable).")] = None,
    station_out: Annotated[Optional[Path], typer.Option(help="lab: write the matching station file here.")] = None,
    station: Annotated[Optional[Path], typer.Option(help="lab: emulate the lab this station file describes (its "
                                                         "models, roles, calibration; its localhost ports).")] = None,
    watchdog: Annotated[bool, typer.Option(help="bench: outputs to zero when the host disconnects (off: like an "
                                                "instrument without a watchdog).")] = True,
) -> None:
    """Start a virtual board or bench that speaks the real wire protocol and runs hamsim's physics."""
    if kind != "lab" and (station is not None or station_out is not None):
        raise ValidationError("station", f"--station / --station-out are for 'emulate lab', not {kind!r}")
    faults = parse_faults(fault or [])
    h = load_system(system)
    if kind == "board":
        _board(h, transport, port, baud, dt, bits, noise, mismatch or 0.0, seed, faults)
    elif kind == "lab":
        from hamsim.cli.station import emulate_lab

        emulate_lab(system, station_out, ideal, seed, station)
    elif kind == "bench":
        _bench(h, port, ideal, mismatch, q_factor, adc_noise, adc_bits, dac_bits, seed, faults, watchdog,
               drift=drift, readout_offset=readout_offset, bias_scale=bias_scale)
    else:
        raise ValidationError("kind", f"must be 'board', 'bench' or 'lab', got {kind!r}")


def _announce(address: str) -> None:
    typer.echo(address)
    typer.echo(f"ready: hamsim train --substrate {address} --nudge-at forward   (Ctrl-C stops)", err=True)
    sys.stdout.flush()


def _board(h, transport, port, baud, dt, bits, noise, mismatch, seed, faults) -> None:  # type: ignore[no-untyped-def]
    from hamsim.emulators.board import BoardModel, BoardServer, serve_fd, serve_socket
    from hamsim.emulators.process import listen_tcp, open_pty

    if transport not in ("pty", "tcp"):
        raise ValidationError("transport", f"must be 'pty' or 'tcp', got {transport!r}")
    server = BoardServer(BoardModel(h, dt=dt, bits=bits, noise=noise, mismatch=mismatch, seed=seed), faults, baud)
    try:
        if transport == "pty":
            master, slave, path = open_pty()
            _announce(f"board:{path}")
            try:
                serve_fd(server, master)
            finally:
                os.close(master)
                os.close(slave)
        else:
            listener = listen_tcp(port)
            _announce(f"board:socket://127.0.0.1:{listener.getsockname()[1]}")
            try:
                serve_socket(server, listener)
            finally:
                listener.close()
    except KeyboardInterrupt:
        typer.echo("stopped", err=True)


def _bench(h, port, ideal, mismatch, q_factor, adc_noise, adc_bits, dac_bits, seed, faults, watchdog,  # type: ignore[no-untyped-def]
           **hidden) -> None:
    from dataclasses import replace

    from hamsim.emulators.bench import BenchConfig, BenchServer

    cfg = BenchConfig.ideal(seed=seed) if ideal else BenchConfig(seed=seed)
    overrides = {"mismatch": mismatch, "q_factor": q_factor, "adc_noise": adc_noise, "adc_bits": adc_bits,
                 "dac_bits": dac_bits, **hidden}
    cfg = replace(cfg, **{k: v for k, v in overrides.items() if v is not None})
    server = BenchServer(h, faults=faults, port=port, config=cfg, watchdog=watchdog)
    _announce(server.address)
    try:
        server.serve()
    except KeyboardInterrupt:
        typer.echo("stopped", err=True)
