"""Time steppers: FastPM KDK, plain leapfrog (``init``/``coefficients``/``step``), and adaptive diffrax solvers."""

from .adaptive import ADAPTIVE_SOLVERS, solve_adaptive
from .base import SPACINGS, PMState, Stepper, integrate, time_grid
from .kdk import fastpm, leapfrog

STEPPERS = {"fastpm": fastpm, "leapfrog": leapfrog}

__all__ = ["STEPPERS", "ADAPTIVE_SOLVERS", "SPACINGS", "PMState", "Stepper", "integrate", "time_grid",
           "fastpm", "leapfrog", "solve_adaptive"]
