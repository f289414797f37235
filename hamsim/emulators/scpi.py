"""The SCPI layer of the emulated instruments: message parsing, header matching, the error queue.

What a real instrument's parser accepts, and only that (SCPI-99 vol. 1 ch. 6-7, IEEE-488.2 ch. 7):

- a program message is one line ended by ``\\n``; several commands are joined by ``;`` and a command
  that does not start with ``:`` or ``*`` is taken relative to the previous one's path (the *root rule*:
  ``SOUR1:VOLT 1;OFFS 0`` sets ``SOUR1:VOLT:OFFS``); a leading ``:`` returns to the root;
- every mnemonic in its short (``FUNC``) or long (``FUNCTION``) form, in any case, and nothing in
  between (``FUNCT`` is an undefined header); optional nodes (``[SOURce]``, written ``:[NODE]:`` in a pattern) may be left out; numeric
  suffixes (``SOUR2``, ``CHAN4``) select a channel, no suffix meaning 1;
- arguments may carry IEEE-488.2 definite-length blocks ``#<d><len><bytes>`` whose bytes may contain
  anything (``\\n`` and ``;`` included);
- replies to several queries of one message are joined by ``;`` and ended by one ``\\n``;
- errors go to a queue read by ``SYST:ERR?`` (``-113,"Undefined header"``, ``-222,"Data out of range"``,
  ...; ``+0,"No error"`` when empty); a failed query answers nothing (the host times out or reads the
  queue).

Instruments declare their commands as patterns (:class:`Command`) with a handler each.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

#: the standard error strings (SCPI-99 vol. 2, ch. 21)
MESSAGES = {
    -100: "Command error", -102: "Syntax error", -104: "Data type error", -108: "Parameter not allowed",
    -109: "Missing parameter", -113: "Undefined header", -114: "Header suffix out of range",
    -200: "Execution error", -221: "Settings conflict", -222: "Data out of range", -224: "Illegal parameter value",
    -230: "Data corrupt or stale", -240: "Hardware error", -310: "System error", -350: "Queue overflow",
    -410: "Query INTERRUPTED",
}


class ScpiError(Exception):
    """A command failed with a standard SCPI error code (its detail is for the emulator's log only)."""

    def __init__(self, code: int, detail: str = "") -> None:
        self.code, self.detail = code, detail
        super().__init__(f'{code},"{MESSAGES.get(code, "Error")}" {detail}'.rstrip())


@dataclass
class Message:
    """One command of a program message: its header tokens, argument text and binary block."""

    header: str
    args: str = ""
    block: bytes | None = None

    @property
    def query(self) -> bool:
        return self.header.endswith("?")


def split_messages(buf: bytearray) -> list[list[Message]]:
    """Take every complete program message (a line, blocks allowed inside) off the front of ``buf``."""
    out: list[list[Message]] = []
    while True:
        parsed = _one_message(buf)
        if parsed is None:
            return out
        msgs, used = parsed
        del buf[:used]
        out.append(msgs)


def _one_message(buf: bytearray) -> tuple[list[Message], int] | None:
    msgs: list[Message] = []
    text = bytearray()
    block: bytes | None = None
    quote = 0
    i, n = 0, len(buf)
    while i < n:
        b = buf[i]
        if quote:
            text.append(b)
            if b == quote:
                quote = 0
            i += 1
            continue
        if b in (0x22, 0x27):  # " or '
            quote = b
            text.append(b)
            i += 1
            continue
        if b == 0x23 and i + 1 < n and 0x31 <= buf[i + 1] <= 0x39 and _in_args(text):  # '#<d>': a definite block
            nd = buf[i + 1] - 0x30
            if n < i + 2 + nd:
                return None
            try:
                length = int(bytes(buf[i + 2:i + 2 + nd]))
            except ValueError:
                length = -1
            if length < 0:
                text.append(b)
                i += 1
                continue
            end = i + 2 + nd + length
            if n < end:
                return None
            block = bytes(buf[i + 2 + nd:end])
            text += b"#"
            i = end
            continue
        if b == 0x23 and i + 1 >= n and _in_args(text):
            return None  # a block header not yet complete
        if b in (0x3B, 0x0A):  # ';' or '\n'
            msgs.append(_command(text, block))
            text, block = bytearray(), None
            i += 1
            if b == 0x0A:
                return [m for m in msgs if m.header or m.args], i
            continue
        text.append(b)
        i += 1
    return None


def _in_args(text: bytearray) -> bool:
    """True once a header and a space have been read (a '#' there starts a block, not a header)."""
    s = text.lstrip()
    return b" " in s or b"\t" in s


def _command(text: bytearray, block: bytes | None) -> Message:
    s = text.decode("ascii", errors="replace").strip()
    head, _, args = s.partition(" ")
    return Message(head.strip(), args.strip(), block)


# ---------------------------------------------------------------------------------------------- headers
_NODE = re.compile(r"^(\[)?([A-Z*]+)([a-z]*)(#)?(\])?$")


@dataclass(frozen=True)
class _Node:
    short: str
    long: str
    optional: bool
    suffix: bool

    def match(self, token: str) -> int | None:
        """The numeric suffix (1 when absent) if ``token`` names this node, else None."""
        t = token.upper()
        m = re.match(r"^([A-Z*?]+?)(\d*)$", t)
        if not m:
            return None
        word, digits = m.group(1), m.group(2)
        if word not in (self.short, self.long):
            return None
        if digits and not self.suffix:
            return None
        return int(digits) if digits else 1


def _nodes(pattern: str) -> list[_Node]:
    out = []
    for part in pattern.lstrip(":").split(":"):
        m = _NODE.match(part)
        if not m:
            raise ValueError(f"bad SCPI pattern part {part!r}")
        opt, upper, lower, suf, _ = m.groups()
        out.append(_Node(upper, upper + lower.upper(), bool(opt), bool(suf)))
    return out


Handler = Callable[[list[int], str, "bytes | None", bool], Any]


@dataclass
class Command:
    """``pattern`` like ``[SOURce#]:FUNCtion:ARBitrary:SRATe`` (``?`` forms match the same pattern);
    ``handler(suffixes, args, block, query)`` returns the reply (str/bytes) of a query, None otherwise."""

    pattern: str
    handler: Handler
    nodes: list[_Node] = field(init=False)

    def __post_init__(self) -> None:
        self.nodes = _nodes(self.pattern)

    def match(self, tokens: list[str]) -> list[int] | None:
        return _match(self.nodes, tokens)


def _match(nodes: list[_Node], tokens: list[str]) -> list[int] | None:
    if not nodes:
        return [] if not tokens else None
    node = nodes[0]
    if tokens:
        s = node.match(tokens[0])
        if s is not None:
            rest = _match(nodes[1:], tokens[1:])
            if rest is not None:
                return [s if node.suffix else 0, *rest]
    if node.optional:
        rest = _match(nodes[1:], tokens)
        if rest is not None:
            return [1 if node.suffix else 0, *rest]
    return None


class ScpiDevice:
    """A SCPI instrument: the IEEE-488.2 common commands, the error queue and a command table."""

    idn = "HAMSIM,SCPI,0,0"

    def __init__(self) -> None:
        self.errors: deque[int] = deque()
        self.commands: list[Command] = [
            Command("*IDN", lambda s, a, b, q: self.idn),
            Command("*RST", lambda s, a, b, q: self.reset()),
            Command("*CLS", lambda s, a, b, q: self.errors.clear()),
            Command("*OPC", lambda s, a, b, q: "1" if q else None),
            Command("*WAI", lambda s, a, b, q: None),
            Command("*TRG", lambda s, a, b, q: self.bus_trigger()),
            Command("SYSTem:ERRor:[NEXT]", self._next_error),
        ]
        self.log: list[str] = []  # every header received (tests: "no non-standard query was needed")

    # -------------------------------------------------------------- to override
    def reset(self) -> None:
        self.errors.clear()

    def bus_trigger(self) -> None:
        raise ScpiError(-200, "no trigger")

    def safe(self) -> None:
        """What the instrument's own protection does when the host is lost (nothing by default)."""

    # -------------------------------------------------------------- queue
    def push(self, code: int) -> None:
        if len(self.errors) >= 20:
            self.errors[-1] = -350
            return
        self.errors.append(code)

    def _next_error(self, s: list[int], a: str, b: bytes | None, q: bool) -> str:
        if not q:
            raise ScpiError(-113)
        if not self.errors:
            return '+0,"No error"'
        code = self.errors.popleft()
        return f'{code},"{MESSAGES.get(code, "Error")}"'

    # -------------------------------------------------------------- execution
    def execute(self, messages: list[Message]) -> str | bytes | None:
        """Run one program message; the joined replies of its queries (None if it had none)."""
        replies: list[str | bytes] = []
        path: list[str] = []
        for m in messages:
            h = m.header
            self.log.append(h.upper())
            q = h.endswith("?")
            bare = h[:-1] if q else h
            if bare.startswith("*"):
                tokens = [bare]
            elif bare.startswith(":"):
                tokens = [t for t in bare[1:].split(":")]
                path = tokens[:-1]
            else:
                tokens = bare.split(":")
                rel = path + tokens
                if path and self._find(rel) is not None:
                    tokens = rel
                path = tokens[:-1]
            try:
                if any(not t for t in tokens):
                    raise ScpiError(-102)
                found = self._find(tokens)
                if found is None:
                    raise ScpiError(-113, bare)
                cmd, suffixes = found
                reply = cmd.handler(suffixes, m.args, m.block, q)
                if q:
                    if reply is None:
                        raise ScpiError(-113, f"{bare} is not a query")
                    replies.append(reply)
            except ScpiError as exc:
                self.push(exc.code)
            except (ValueError, IndexError):
                self.push(-104)
        if not replies:
            return None
        if len(replies) == 1:
            return replies[0]
        return b";".join(r if isinstance(r, bytes) else r.encode() for r in replies)

    def _find(self, tokens: list[str]) -> tuple[Command, list[int]] | None:
        for c in self.commands:
            s = c.match(tokens)
            if s is not None:
                return c, s
        return None


# ---------------------------------------------------------------------------------------------- arguments
def number(arg: str, *, minimum: float | None = None, maximum: float | None = None) -> float:
    """A numeric argument (NR1/NR2/NR3, or MIN/MAX/DEF when the bounds are given); -104 if not a number."""
    a = arg.strip().split(",")[0].strip().upper()
    if not a:
        raise ScpiError(-109)
    if a in ("MIN", "MINIMUM") and minimum is not None:
        return minimum
    if a in ("MAX", "MAXIMUM") and maximum is not None:
        return maximum
    try:
        v = float(a)
    except ValueError:
        raise ScpiError(-104, arg) from None
    if v != v or v in (float("inf"), float("-inf")):
        raise ScpiError(-104, arg)
    return v


def boolean(arg: str) -> bool:
    a = arg.strip().upper()
    if a in ("ON", "1"):
        return True
    if a in ("OFF", "0"):
        return False
    raise ScpiError(-224 if a else -109, arg)


def choice(arg: str, options: dict[str, str]) -> str:
    """``options`` maps every accepted spelling (short and long, upper case) to its canonical value."""
    a = arg.strip().strip('"').strip("'").upper()
    if a not in options:
        raise ScpiError(-224 if a else -109, arg)
    return options[a]


def in_range(value: float, low: float, high: float) -> float:
    if not low - 1e-12 * max(1.0, abs(low)) <= value <= high + 1e-12 * max(1.0, abs(high)):
        raise ScpiError(-222, f"{value} outside [{low}, {high}]")
    return value


def channel_list(arg: str, count: int) -> list[int]:
    """``(@1)``, ``(@1,3)``, ``(@1:3)`` -> channel numbers, each checked against ``count``."""
    a = arg.strip()
    if not (a.startswith("(@") and a.endswith(")")):
        raise ScpiError(-104, arg)
    out: list[int] = []
    for part in a[2:-1].split(","):
        lo, _, hi = part.strip().partition(":")
        try:
            first, last = int(lo), int(hi or lo)
        except ValueError:
            raise ScpiError(-104, arg) from None
        if not 1 <= first <= last <= count:
            raise ScpiError(-222, arg)
        out += range(first, last + 1)
    return out
