"""Pre-flight check before echo training on a device: is the echo gradient above its noise?

Measured on the substrate itself, on one training batch:

1. **noise** — a rest record (nothing played, from rest): the standard deviation of every recorded
   position, per channel (the largest is reported);
2. **nudge ladder** — one centered estimate at eps, 10 eps, 100 eps, ... recording the echoes: the
   half-difference of the two echoes' positions is the nudge response; its RMS above the noise
   floor (sigma^2 / 2 per sample) grows like eps.  The largest usable eps keeps that response below
   ``deviation`` x the RMS of the forward positions (small against the states the forward pass
   visits, so the echoes stay in the regime — and a converter's range — the forward pass uses);
3. **gradient noise** — ``trials`` estimates at that eps*: their mean g and the summed variance N of
   their entries give the signal power S = |g|^2 - N / trials, and the expected cosine between one
   estimate and the noise-free one, sqrt(S / (S + N)); ``trials`` more at the configured eps give its
   own N (measured, not extrapolated: part of the noise scales like 1/eps, part does not).  Averaging R
   shots divides the variance by R; for other eps the larger (1/eps^2) scaling is assumed, which never
   overstates a proposal made at a smaller eps than measured:

       N(eps, R) = N(eps*, R0) max(1, (eps* / eps)^2) R0 / R.

The check passes when the expected cosine at the configured (eps, repeats) reaches ``threshold``; it
proposes the usable eps and the fewest repeats that reach max(threshold, 0.9).  It measures noise, not bias: a
systematic error (dissipation, a wrong model) is what the calibration (``hamsim calibrate``) removes,
and the echo return reported here (median over the trials) is its symptom.

On a noisy device the echo return error has a floor: the readout noise alone (positions, and momenta
differentiated from them) keeps the echoes' end away from the flipped start.  :meth:`Preflight.return_bound`
is the bound a session flags steps above: ``RETURN_NOISE_FACTOR`` times that measured floor, or the ideal
substrate's ``ECHO_RETURN_BOUND`` where that is larger — so a flag means "this step's echoes returned worse
than the device did in its pre-flight" (a fault or a change during the session), not "this device is noisy".
The level itself is the pre-flight's report: above the ideal bound it is readout noise or a systematic
error (dissipation, a wrong model), which averaging or the calibration addresses.  I/O-free: the Substrate
interface and the RHEL protocol only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from hamsim import validation
from hamsim.errors import HamsimError, ValidationError
from hamsim.losses import ReadoutLoss
from hamsim.protocols.rhel import ECHO_RETURN_BOUND, EchoGradient, Estimator, rhel_gradient
from hamsim.substrate import NudgeAt, State, Substrate

#: default expected gradient cosine below which training is refused: an optimizer still descends on noisy
#: gradients whose expectation is right, but not on noise
MIN_COSINE = 0.5
#: the cosine a proposal aims at (or the threshold, when that is higher)
TARGET_COSINE = 0.9
#: a step's echo return error is flagged above this multiple of the floor measured by the pre-flight (on the
#: emulated noisy lab the per-step error spreads to about 2x its median)
RETURN_NOISE_FACTOR = 4.0


@dataclass(frozen=True)
class Preflight:
    """What the pre-flight measured and proposes."""

    substrate: str
    noise: float  # largest per-channel standard deviation of the rest record (position units)
    echo_return: float  # median relative echo return error at the usable eps
    eps: float  # configured
    repeats: int  # configured (the shots the substrate averaged during the check)
    expected_cosine: float  # at the configured eps and repeats
    usable_eps: float
    proposed_repeats: int  # fewest repeats reaching the target at usable_eps (0: none up to max_repeats)
    proposed_cosine: float
    threshold: float
    signal_power: float
    noise_power: float  # at usable_eps with the configured repeats
    ladder: tuple[tuple[float, float], ...]  # (eps, nudge response RMS above the noise floor)

    @property
    def ok(self) -> bool:
        return self.expected_cosine >= self.threshold

    def return_bound(self) -> float:
        """Echo return error above which a training step is flagged on this device."""
        return max(ECHO_RETURN_BOUND, RETURN_NOISE_FACTOR * self.echo_return)

    def expected(self, eps: float, repeats: int) -> float:
        """Expected cosine of one estimate at (eps, repeats), from the measured signal and noise."""
        n = self.noise_power * max(1.0, (self.usable_eps / eps) ** 2) * self.repeats / repeats
        return _cos(self.signal_power, n)

    def summary(self) -> str:
        s = (f"pre-flight on {self.substrate}: measured noise {self.noise:.3g} (position units, rest record, "
             f"{self.repeats} shot(s) averaged), echo return {self.echo_return:.3g}; expected gradient cosine at "
             f"eps {self.eps:g} with {self.repeats} repeat(s): {self.expected_cosine:.3f} (threshold {self.threshold:g})")
        if self.echo_return > ECHO_RETURN_BOUND:
            s += (f"; the echo return is above an ideal substrate's {ECHO_RETURN_BOUND:g} (readout noise, or a "
                  f"systematic error that averaging does not remove: see hamsim calibrate), so steps are flagged "
                  f"above {self.return_bound():.3g}")
        if self.proposed_repeats:
            s += (f"; eps {self.usable_eps:g} with --repeats {self.proposed_repeats} is expected to reach "
                  f"{self.proposed_cosine:.3f}")
        else:
            s += (f"; no eps up to the usable {self.usable_eps:g} (nudge response 10 % of the forward motion) "
                  f"with up to the allowed repeats reaches {max(self.threshold, TARGET_COSINE):g} "
                  f"(best {self.proposed_cosine:.3f})")
        return s

    def advice(self) -> str:
        if self.proposed_repeats:
            return (f"rerun with --eps {self.usable_eps:g} --repeats {self.proposed_repeats}, or --force to train "
                    f"anyway")
        return ("reduce the noise (averaging, a lower-noise digitizer), a stronger loss signal, or --force to train "
                "anyway")


def _cos(s: float, n: float) -> float:
    return math.sqrt(s / (s + n)) if s > 0 else 0.0


def _flat(g: EchoGradient, keys: tuple[str, ...]) -> np.ndarray:
    return np.concatenate([np.ravel(g.params[k]) for k in keys])


def _response(g: EchoGradient, noise: np.ndarray) -> tuple[float, float]:
    """(RMS of the nudge response above the noise floor, RMS of the forward positions)."""
    assert g.echo is not None and g.echo.trajectories and g.forward is not None and g.forward.trajectory is not None
    plus, minus = g.echo.trajectories
    half = 0.5 * (np.asarray(plus.phi) - np.asarray(minus.phi))
    floor = float(np.mean(noise**2)) / 2.0
    resp = math.sqrt(max(float(np.mean(half**2)) - floor, 0.0))
    fwd = math.sqrt(float(np.mean(np.asarray(g.forward.trajectory.phi) ** 2)))
    return resp, fwd


def preflight(substrate: Substrate, u: np.ndarray, loss: ReadoutLoss, *, eps: float, repeats: int = 1,
              estimator: Estimator = "centered", nudge_at: NudgeAt = "forward", state0: State | None = None,
              threshold: float = MIN_COSINE, trials: int = 3, max_repeats: int = 64, deviation: float = 0.1,
              keys: tuple[str, ...] | None = None, max_ladder: int = 6) -> Preflight:
    """Measure noise, echo return and gradient noise on ``substrate`` with one batch (see the module docstring).

    ``repeats``: the shots the substrate averages now (``--repeats``); ``keys``: the parameters trained
    (default all)."""
    eps = validation.positive_scalar(eps, "eps")
    repeats = validation.positive_int(repeats, "repeats")
    trials = validation.positive_int(trials, "trials")
    if trials < 2:
        raise ValidationError("trials", "the gradient noise needs at least 2 trials")
    threshold = validation.real(threshold, "threshold", low=0.0, high=1.0)
    info = substrate.info
    u = validation.array(u, "u", ndim=3)
    K, B = u.shape[0], u.shape[1]
    n = info.n
    rest = substrate.forward(np.zeros((K, 1, info.input_dim)), State.zeros(1, n), record_every=1)
    if rest.trajectory is None:
        raise ValidationError("substrate", f"{info.name} returned no recorded rest trajectory")
    x = np.asarray(rest.trajectory.phi)[:, 0]
    noise = np.std(x, axis=0, ddof=1)

    def estimate(e: float, record: bool) -> EchoGradient:
        return rhel_gradient(substrate, u, loss, eps=e, estimator=estimator, nudge_at=nudge_at, state0=state0,
                             record_every=1 if record else 0, irreversible="allow", echo_return_bound=1e300)

    ladder: list[tuple[float, float]] = []
    floor = math.sqrt(float(np.mean(noise**2)) / 2.0)  # RMS of the noise in the half-difference
    usable = eps
    e = eps
    for rung in range(max_ladder):
        try:
            resp, fwd = _response(estimate(e, True), noise)
        except HamsimError:  # a range the device refuses: the previous rung is the last usable one
            if rung == 0:
                raise
            break
        ladder.append((e, resp))
        if resp > 0.5 * floor or resp > deviation * fwd:  # measurable: the linear response puts it at the bound
            usable = e * deviation * fwd / resp
            break
        usable = e
        e *= 10.0
    usable = float(f"{usable:.1g}")
    ests = [estimate(usable, False) for _ in range(trials)]
    keys = keys or tuple(ests[0].params)
    G = np.stack([_flat(g, keys) for g in ests])
    mean = G.mean(axis=0)
    noise_power = float(np.sum(G.var(axis=0, ddof=1)))
    signal = float(mean @ mean) - noise_power / trials
    echo_ret = float(np.median([g.echo_return for g in ests]))
    pf = Preflight(info.name, float(np.max(noise)), echo_ret, eps, repeats, 0.0, usable, 0, 0.0, threshold,
                   signal, noise_power, tuple(ladder))
    if usable == eps:
        expected = pf.expected(eps, repeats)
    else:  # measured at the configured eps itself
        G0 = np.stack([_flat(estimate(eps, False), keys) for _ in range(trials)])
        expected = _cos(signal, float(np.sum(G0.var(axis=0, ddof=1))))
    proposed, best = 0, 0.0
    target = max(threshold, TARGET_COSINE)
    for r in range(1, max_repeats + 1):
        c = pf.expected(usable, r)
        best = max(best, c)
        if c >= target:
            proposed, best = r, c
            break
    return Preflight(info.name, pf.noise, echo_ret, eps, repeats, expected, usable, proposed, best, threshold,
                     signal, noise_power, tuple(ladder))
