"""Time steppers: FastPM KDK, BullFrog DKD, plain leapfrog (``init``/``coefficients``/``step``), and adaptive diffrax solvers."""

from .adaptive import ADAPTIVE_SOLVERS, solve_adaptive
from .adjoint import integrate_adjoint
from .base import AUTODIFF, SPACINGS, PMState, Stepper, integrate, time_grid
from .bullfrog import bullfrog, bullfrog_from_rest
from .kdk import fastpm, leapfrog

STEPPERS = {"fastpm": fastpm, "bullfrog": bullfrog, "leapfrog": leapfrog}

__all__ = ["STEPPERS", "ADAPTIVE_SOLVERS", "SPACINGS", "AUTODIFF", "integrate_adjoint", "PMState", "Stepper", "integrate",
           "time_grid", "fastpm", "bullfrog", "bullfrog_from_rest", "leapfrog", "solve_adaptive"]
