"""Exception hierarchy.

Every error hamsim raises on purpose derives from :class:`HamsimError`, so a CLI or a lab script can
catch the whole family.  Errors about an argument carry the argument's name in ``.argument``.
"""

from __future__ import annotations


class HamsimError(Exception):
    """Base class of all deliberate hamsim errors."""


class ValidationError(HamsimError, ValueError):
    """A user-supplied value is invalid (shape, dtype, NaN/inf, range, unknown name).

    Raised at the boundary, before any computation starts.
    """

    def __init__(self, argument: str, message: str) -> None:
        self.argument = argument
        super().__init__(f"{argument}: {message}")


class UnknownNameError(ValidationError, KeyError):
    """A name looked up in a registry (integrator, Hamiltonian family, parameter) does not exist."""

    def __str__(self) -> str:  # KeyError would otherwise add quotes
        return ValueError.__str__(self)


class DivergenceError(HamsimError):
    """A phase produced a non-finite state (the integration blew up): nothing downstream is meaningful."""


class IrreversibleSubstrateError(ValidationError):
    """Echo learning was asked of a substrate that declares itself not time-reversible (a non-symmetric
    integrator, damping): its echoes do not retrace the forward pass and the estimate is biased."""


class EchoReturnWarning(UserWarning):
    """The echoes did not return to the (momentum-flipped) start within the bound: the gradient of this
    step is not trustworthy (chaos amplifying round-off, dissipation, noise, a timing fault)."""
