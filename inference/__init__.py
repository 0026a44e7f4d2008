"""Field-level inference on the jaxpm engine: a numpyro model of a galaxy density field, Kaiser
preconditioning, samplers (MCLMC, MAMS, NUTS, HMC, NUTS-within-Gibbs), a chunked run manager with
exact resume, diagnostics and a command line (``python -m inference mock|sample``)."""

from .model import FieldModel, ModelSpec

__all__ = ["FieldModel", "ModelSpec"]
