"""Test set-up: float64 available everywhere (tests isolate algorithms in float64), CPU only unless
``JAXPM_TEST_ON_GPU`` is set (then JAX picks its default platform, e.g. the GPU).

The tests of the distributed engine (``tests/sharded/``) need 8 CPU devices, which must be requested
before jax is imported; they run in their own pytest process, started by ``tests/test_sharded_suite.py``
(or directly: ``JAXPM_TEST_DEVICES=8 python -m pytest tests/sharded``).
"""

import os

os.environ.setdefault("JAX_PLATFORMS", "cpu") if os.environ.get("JAXPM_TEST_ON_GPU") is None else None
if os.environ.get("JAXPM_TEST_DEVICES"):
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                               f" --xla_force_host_platform_device_count={int(os.environ['JAXPM_TEST_DEVICES'])}")

import jax  # noqa: E402

jax.config.update("jax_enable_x64", True)

# the sharded tests only in a process that has the devices for them
collect_ignore = [] if os.environ.get("JAXPM_TEST_DEVICES") else ["sharded"]
