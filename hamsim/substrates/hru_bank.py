"""A bank of HRU units as a fast :class:`~hamsim.substrate.Substrate`: the recurrent core of an HSSM layer.

The system is a :class:`~hamsim.hamiltonians.hru.LinearHRU` or :class:`~hamsim.hamiltonians.hru.NonlinearHRU`
with ``input_coupling="diagonal"``: every unit has its own drive channel v_i = (B u)_i, computed outside
by the feed-forward layer.  It is the same Hamiltonian the general :class:`~hamsim.substrates.simulated.SimulatedSubstrate`
integrates (a test holds the two to round-off), run by kernels specialised for this structure
(:mod:`hamsim.substrates._kernels.hru_bank`): O(n) work per step instead of O(n d), sample-major arrays, samples
in parallel.

Echoes are nudged at the recorded forward state with a given sequence (``at="forward"``: the chained,
linearised form of science.md 3.4, where the nudge is the cotangent that reaches this layer's positions
from above); the bank cannot evaluate a readout loss itself (``online_nudge`` is False).

Arrays in the :class:`Substrate` calls are (K, B, n) as everywhere in hamsim; a (K, B, n) *view* of a
sample-major (B, K, n) buffer costs no copy, and results come back as such views.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from hamsim import validation
from hamsim.errors import ValidationError
from hamsim.hamiltonians.hru import LinearHRU, NonlinearHRU
from hamsim.hamiltonians.network import zero_gradients
from hamsim.substrates import plan
from hamsim.substrates._kernels import cuda_kernels
from hamsim.substrates._kernels import fused_echo as F
from hamsim.substrates._kernels import hru_bank as KB
from hamsim.integrators.splitting import get_integrator
from hamsim.losses import ReadoutLoss
from hamsim.substrate import (
    Capabilities,
    EchoRequest,
    EchoResult,
    ForwardResult,
    State,
    SubstrateInfo,
    refuse_momentum_nudges,
)

_DTYPES = (np.dtype(np.float64), np.dtype(np.float32))


def _sample_major(a: Any, name: str, shape: tuple[int, int, int], dtype: np.dtype) -> np.ndarray:
    """(K, B, n) array -> C-contiguous (B, K, n) in ``dtype`` (free when ``a`` is a view of such a buffer)."""
    arr = np.asarray(a)
    if arr.shape != shape:
        raise ValidationError(name, f"must have shape (K, B, n) = {shape}, got {arr.shape}")
    if arr.dtype.kind != "f":
        raise ValidationError(name, f"must be a floating-point array, got dtype {arr.dtype}")
    out = np.ascontiguousarray(arr.transpose(1, 0, 2), dtype=dtype)
    if not np.isfinite(out).all():
        raise ValidationError(name, "contains NaN or inf")
    return out




class HRUBankSubstrate:
    """Uncoupled HRU units with one drive channel each, leapfrog, float64 or float32, on the CPU or a CUDA GPU."""

    def __init__(self, hamiltonian: LinearHRU | NonlinearHRU, dt: float, *, dtype: Any = np.float64,
                 name: str = "hru-bank", device: str = "cpu") -> None:
        if not isinstance(hamiltonian, (LinearHRU, NonlinearHRU)):
            raise ValidationError("hamiltonian", f"must be a LinearHRU or NonlinearHRU, got {type(hamiltonian).__name__}")
        if hamiltonian.options.get("input_coupling") != "diagonal":
            raise ValidationError("hamiltonian", "an HRU bank needs input_coupling='diagonal' (one drive per unit)")
        if hamiltonian.terms().kin_kind != 0:
            raise ValidationError("hamiltonian", "an HRU bank integrates T = pi^2 / 2 only (quadratic kinetic term)")
        self._dtype = validation.as_dtype(dtype)
        if self._dtype not in _DTYPES:
            raise ValidationError("dtype", f"must be float64 or float32, got {self._dtype}")
        self._h = hamiltonian
        self._dt = validation.positive_scalar(dt, "dt")
        self._name = name
        if device not in ("cpu", "cuda"):
            raise ValidationError("device", f"must be 'cpu' or 'cuda', got {device!r}")
        self._cuda: Any = None
        if device == "cuda":
            self._cuda = cuda_kernels("cuda_bank")
        self._device = device
        a, c = get_integrator("leapfrog").coefficients(np.float64)
        self._drift, self._kick = (float(a[0]), float(a[1])), float(c[0])

    # ------------------------------------------------------------------ parameters
    @property
    def hamiltonian(self) -> LinearHRU | NonlinearHRU:
        return self._h

    @property
    def dtype(self) -> np.dtype:
        return self._dtype

    @property
    def device(self) -> str:
        """Where the kernels run: "cpu" (Numba, samples over threads) or "cuda" (one GPU thread per unit)."""
        return self._device

    @property
    def info(self) -> SubstrateInfo:
        return SubstrateInfo(
            name=self._name, n=self._h.n, input_dim=self._h.input_dim, dt=self._dt, specs=self._h.specs,
            capabilities=Capabilities(online_nudge=False, time_reversible=True), units=dict(self._h.units), kernel_plan=plan.IDENT)

    def get_params(self) -> dict[str, np.ndarray]:
        return {k: np.array(v) for k, v in self._h.params.items()}

    def set_params(self, params: dict[str, Any]) -> None:
        self._h = self._h.with_params(**params)

    def snapshot(self) -> dict[str, Any]:
        return {"name": self._name, "system": self._h.config(), "dt": self._dt, "integrator": "leapfrog",
                "dtype": str(self._dtype), "device": self._device, "kernel_plan": plan.IDENT}

    def close(self) -> None:
        """Nothing to release."""

    # ------------------------------------------------------------------ kernels' view of the system
    def _coefficients(self) -> tuple[int, np.ndarray, np.ndarray]:
        """(nonlinearity code, per-unit coefficient table (N_COEF, n), per-unit steps h)."""
        t = self._h.terms(np.float64)
        h = self._dt * self._h.time_scale()
        n = self._h.n
        cf = np.zeros((KB.N_COEF, n))
        cf[KB.DRIFT0] = self._drift[0] * h
        cf[KB.DRIFT1] = self._drift[1] * h
        cf[KB.KICK] = self._kick * h
        cf[KB.ONSITE] = t.onsite
        cf[KB.LIN] = np.diagonal(t.input_t)
        if t.nl_kind != 0:
            cf[KB.W] = t.nl_w
            cf[KB.C] = t.nl_c
            cf[KB.BIAS] = t.nl_bias
            cf[KB.C_OVER_W] = t.nl_c / t.nl_w
            cf[KB.INV_W] = 1.0 / t.nl_w
        else:
            cf[KB.W] = 1.0
            cf[KB.INV_W] = 1.0
        return int(t.nl_kind), cf.astype(self._dtype), h

    def _state(self, state: State, B: int, name: str) -> tuple[np.ndarray, np.ndarray]:
        n = self._h.n
        phi = validation.array(state.phi, f"{name}.phi", shape=(B, n))
        pi = validation.array(state.pi, f"{name}.pi", shape=(B, n))
        return np.array(phi, self._dtype), np.array(pi, self._dtype)

    def _inputs(self, u: Any) -> np.ndarray:
        arr = np.asarray(u)
        if arr.ndim != 3 or arr.shape[2] != self._h.n:
            raise ValidationError("u", f"must have shape (K, B, {self._h.n}), got {arr.shape}")
        if arr.shape[0] < 1:
            raise ValidationError("u", "needs at least one step")
        return _sample_major(arr, "u", arr.shape, self._dtype)

    # ------------------------------------------------------------------ phases
    def run(self, v: np.ndarray, phi0: np.ndarray, pi0: np.ndarray, *, record_every: int = 1,
            momenta: bool = False) -> tuple[np.ndarray, np.ndarray | None, State]:
        """Sample-major forward pass: drives v (B, K, n) C-contiguous in this dtype, initial (B, n).

        Returns (positions (B, R, n), momenta (B, R, n) or None, final state); R = K // record_every + 1,
        index 0 the initial state.  The building block of :meth:`forward` and of deep-learning layers."""
        B, K, n = v.shape
        R = K // record_every + 1 if record_every > 0 else 0
        nl, cf, _ = self._coefficients()
        rec_x = np.empty((B, R, n), self._dtype)
        rec_p = np.empty((B, R if momenta else 0, n), self._dtype)
        xK, pK = np.empty((B, n), self._dtype), np.empty((B, n), self._dtype)
        x0, p0 = np.ascontiguousarray(phi0, self._dtype), np.ascontiguousarray(pi0, self._dtype)
        if self._cuda is not None:
            self._cuda.forward(nl, self._dtype.type(1.0), cf, x0, p0, v, record_every, rec_x, rec_p, xK, pK)
        else:
            KB.bank_forward(nl, cf, x0, p0, v, record_every, rec_x, rec_p, xK, pK)
        return rec_x, (rec_p if momenta else None), State(xK, pK)

    def forward(self, u: Any, state0: State, *, loss: ReadoutLoss | None = None,
                nudge_sequence: bool = False, record_every: int = 0) -> ForwardResult:
        if loss is not None or nudge_sequence:
            raise ValidationError("loss", f"{self._name} has no readout loss: it is a layer core whose echoes are "
                                          "nudged by a given sequence (use SimulatedSubstrate for readout losses)")
        v = self._inputs(u)
        B = v.shape[0]
        phi0, pi0 = self._state(state0, B, "state0")
        rx, rp, final = self.run(v, phi0, pi0, record_every=record_every, momenta=record_every > 0)
        traj = None
        if record_every > 0:
            traj = State(rx.transpose(1, 0, 2), rp.transpose(1, 0, 2))  # type: ignore[union-attr]
        r = np.zeros((0, self._h.n))
        return ForwardResult(final=final, loss=0.0, readout_grad_C=r, readout_grad_c0=np.zeros(0), trajectory=traj,
                             kernel=plan.bank_forward_plan(device=self._device).name)

    def echo(self, request: EchoRequest) -> EchoResult:
        refuse_momentum_nudges(request, self.info.name)
        if request.at not in ("forward", "none"):
            raise ValidationError("at", f"{self._name} nudges at the recorded forward state ('forward') or not at "
                                        f"all ('none'), not at {request.at!r}: it cannot evaluate a loss online")
        if len(request.nudges) != 2 or len(request.weights) != 2:
            raise ValidationError("nudges", f"{self._name} runs exactly two echoes per request")
        if request.record_every:
            raise ValidationError("record_every", f"{self._name} does not record echo trajectories")
        v = self._inputs(request.u)
        B, K, n = v.shape
        xf, pf = self._state(request.start, B, "start")
        G0 = np.array(validation.array(request.initial_nudge, "initial_nudge", shape=(B, n)), self._dtype)
        if request.at == "forward":
            if request.nudge_sequence is None:
                raise ValidationError("nudge_sequence", "the forward-state nudge needs the sequence")
            G = _sample_major(request.nudge_sequence, "nudge_sequence", (K, B, n), self._dtype)
        else:
            G = np.zeros((B, K, n), self._dtype)
        dhdv = np.zeros((B, K if request.input_gradients else 0, n), self._dtype)
        xe, pe = np.empty((2, B, n), self._dtype), np.empty((2, B, n), self._dtype)
        grads, row = self._echoes(xf, pf, v, G, G0, request.nudges, request.weights, dhdv, xe, pe, on_device=False)
        return EchoResult(
            dH_dtheta=grads,
            dH_du=dhdv.transpose(1, 0, 2) if request.input_gradients else None,
            finals=(State(xe[0], pe[0]), State(xe[1], pe[1])), kernel=row.name)

    def _echoes(self, xf: Any, pf: Any, v: Any, G: Any, G0: Any, nudges: Any, weights: Any, dhdv: Any, xe: Any,
                pe: Any, *, on_device: bool) -> tuple[dict[str, np.ndarray], plan.Row]:
        """The two echoes on this device's arrays (host arrays, or CUDA arrays when ``on_device``): outputs
        filled in place; returns dH/dtheta (the moments summed over samples, on the host) and the plan row."""
        B, _, n = v.shape
        nl, cf, h = self._coefficients()
        w0, w1 = (float(x) for x in weights)
        row = plan.bank_plan(linear=nl == 0, contrast=w1 == -w0, device=self._device)
        pair = None
        if w1 == -w0:  # the pair's mean and half-difference nudges: the sum in the data's precision, halved in float64
            T = self._dtype.type
            e0, e1 = (T(x) for x in nudges)
            pair = T(0.5 * float(e0 + e1)), T(0.5 * float(e0 - e1))
        nudges_arr, weights_arr = np.asarray(nudges, self._dtype), np.asarray(weights, np.float64)
        if on_device:
            mom_d = self._cuda.device_empty((B, KB.N_MOM, n), np.float64)  # every element is written
            self._cuda.echoes_on_device(nl, self._dtype.type(1.0), cf, self._drift[0], self._drift[1], xf, pf, v, G,
                                        G0, None if pair is None else (*pair, w0), nudges_arr, weights_arr, mom_d,
                                        dhdv, xe, pe)
            mom = self._cuda.to_host(mom_d)
        else:
            mom = np.zeros((B, KB.N_MOM, n))
            if self._cuda is not None:
                self._cuda.echoes(nl, self._dtype.type(1.0), cf, self._drift[0], self._drift[1], xf, pf, v, G, G0,
                                  None if pair is None else (*pair, w0), nudges_arr, weights_arr, mom, dhdv, xe, pe)
            elif pair is not None:
                KB.contrast_pair_echoes(nl, cf, self._drift[0], self._drift[1], xf, pf, v, G, G0, *pair, w0, mom,
                                        dhdv, xe, pe)
            else:
                KB.bank_echoes(nl, cf, self._drift[0], self._drift[1], xf, pf, v, G, G0, nudges_arr, weights_arr,
                               mom, dhdv, xe, pe)
        grads = self._h.param_gradients(self._moments_to_gradients(mom.sum(axis=0), h), self._dt)
        return grads, row

    # ------------------------------------------------------------------ phases on arrays already on the GPU
    def _need_cuda(self, what: str) -> None:
        if self._cuda is None:
            raise ValidationError("device", f"{what} needs HRUBankSubstrate(device='cuda'), this one runs on the CPU")

    def _check_device_arrays(self, arrays: dict[str, tuple[Any, tuple[int, ...]]]) -> None:
        for name, (a, shape) in arrays.items():
            if tuple(a.shape) != shape:
                raise ValidationError(name, f"must have shape {shape}, got {tuple(a.shape)}")
            if np.dtype(str(a.dtype).replace("torch.", "")) != self._dtype:
                raise ValidationError(name, f"must be {self._dtype} like the substrate, got {a.dtype}")

    def run_on_device(self, v: Any, phi0: Any, pi0: Any, rec_x: Any, xK: Any, pK: Any) -> str:
        """:meth:`run` with record_every = 1 on CUDA arrays, zero-copy (numba device arrays, or torch CUDA tensors
        and anything else with ``__cuda_array_interface__``, C-contiguous, in this dtype): drives v (B, K, n),
        initial state (B, n); fills positions ``rec_x`` (B, K + 1, n) and the final state ``xK``, ``pK`` (B, n)
        in place.  Returns the plan row that ran."""
        self._need_cuda("run_on_device")
        B, K, n = v.shape
        if n != self._h.n or K < 1:
            raise ValidationError("v", f"must have shape (B, K >= 1, {self._h.n}), got {tuple(v.shape)}")
        self._check_device_arrays({"v": (v, (B, K, n)), "phi0": (phi0, (B, n)), "pi0": (pi0, (B, n)),
                                   "rec_x": (rec_x, (B, K + 1, n)), "xK": (xK, (B, n)), "pK": (pK, (B, n))})
        nl, cf, _ = self._coefficients()
        rec_p = self._cuda.device_empty((B, 0, n), self._dtype)
        self._cuda.forward_on_device(nl, self._dtype.type(1.0), cf, phi0, pi0, v, 1, rec_x, rec_p, xK, pK)
        return plan.bank_forward_plan(device="cuda").name

    def echo_on_device(self, start_phi: Any, start_pi: Any, v: Any, G: Any, nudges: tuple[float, float],
                       weights: tuple[float, float], dhdv: Any, xe: Any, pe: Any) -> tuple[dict[str, np.ndarray], str]:
        """:meth:`echo` with ``at="forward"`` and input gradients on CUDA arrays, zero-copy (as
        :meth:`run_on_device`): echoes from the flipped ``start`` (B, n) under drives v (B, K, n), nudged by
        nudges[e] G (B, K, n) at the recorded forward index (G[:, K-1] at the start); fills dH/du ``dhdv``
        (B, K, n) and the echoes' end states ``xe``, ``pe`` (2, B, n) in place.  Returns (dH/dtheta by
        parameter on the host, the plan row that ran)."""
        self._need_cuda("echo_on_device")
        B, K, n = v.shape
        self._check_device_arrays({"v": (v, (B, K, n)), "start_phi": (start_phi, (B, n)), "start_pi": (start_pi, (B, n)),
                                   "G": (G, (B, K, n)), "dhdv": (dhdv, (B, K, n)), "xe": (xe, (2, B, n)),
                                   "pe": (pe, (2, B, n))})
        if len(nudges) != 2 or len(weights) != 2:
            raise ValidationError("nudges", f"{self._name} runs exactly two echoes per request")
        G0 = self._cuda.device_view(G)[:, K - 1, :]
        grads, row = self._echoes(start_phi, start_pi, v, G, G0, nudges, weights, dhdv, xe, pe, on_device=True)
        return grads, row.name

    def _moments_to_gradients(self, mom: np.ndarray, h: np.ndarray) -> Any:
        """Canonical dt-weighted accumulators from the summed bank moments, through the one conversion of the
        fused kernels (:func:`~hamsim.substrates._kernels.fused_echo.moments_to_gradients`, diagonal-drive
        table): the bank's moments go into that table's rows, sum w x_i v_i into its input row."""
        t = self._h.terms(np.float64)
        table = np.zeros((F.N_FIXED + 2, self._h.n))  # the bank does not gather sum w g'_i v_i: B is not learnt
        for row_bank, row_fused in ((KB.SP2, F.SP2), (KB.SX2, F.SX2), (KB.SG, F.SG), (KB.SG1, F.SG1), (KB.SXV, F.N_FIXED)):
            table[row_fused] = mom[row_bank]
        if t.nl_kind != 0:  # the bank gathers sum w (g' x - g / W); the table wants sum w g' x (float64: exact enough)
            table[F.SGX] = mom[KB.SGW] + mom[KB.SG] / t.nl_w
        g = zero_gradients(t)
        F.moments_to_gradients(t, table, np.ascontiguousarray(h, np.float64), np.array([self._kick]), g, True)
        return g
