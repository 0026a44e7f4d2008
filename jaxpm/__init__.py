"""jaxpm: a distributed, differentiable particle-mesh N-body engine in JAX.

Data flow: config -> Domain -> Cosmology -> ics -> lpt -> steppers -> observables -> io.
"""

from .cosmology import (Cosmology, CosmoPowerEmulator, EisensteinHu, TabulatedPower, growth_table,
                        power_provider_from_config)
from .domain import Domain
from .errors import ConfigError
from .forces import ForceSpec, density, pm_forces
from .ics import linear_field, linear_field_from_seed, white_noise
from .lpt import lpt
from .simulation import Snapshot, simulate

__version__ = "0.1.0"

__all__ = [
    "Cosmology", "EisensteinHu", "CosmoPowerEmulator", "TabulatedPower", "power_provider_from_config",
    "growth_table", "Domain", "ConfigError", "ForceSpec", "density", "pm_forces", "linear_field", "linear_field_from_seed", "white_noise", "lpt", "Snapshot",
    "simulate", "__version__",
]
