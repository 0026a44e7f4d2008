"""Test set-up: float64 available everywhere (tests isolate algorithms in float64), CPU only."""

import os

os.environ.setdefault("JAX_PLATFORMS", "cpu") if os.environ.get("JAXPM_TEST_ON_GPU") is None else None

import jax  # noqa: E402

jax.config.update("jax_enable_x64", True)
