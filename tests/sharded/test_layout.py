"""Domain layout on 8 CPU devices: defaults, where the data lives, and bad input."""

import jax
import numpy as np
import pytest

import jaxpm
from jaxpm import ConfigError


def test_eight_devices_present():
    assert jax.device_count() == 8, "run with JAXPM_TEST_DEVICES=8 (see tests/conftest.py)"


def test_default_uses_all_devices_most_square():
    d = jaxpm.Domain.create(16, 100.0)
    assert d.pdims == (2, 4) and d.device_mesh.devices.size == 8
    assert d.halo == 4 and d.capacity == 0.25


def test_each_device_holds_its_share():
    d = jaxpm.Domain.create(16, 100.0, pdims=(2, 4))
    c = jaxpm.Cosmology()
    lin = jax.jit(lambda: jaxpm.linear_field(d, c, jaxpm.white_noise(d, 0)))()
    dx, p = jax.jit(lambda l: jaxpm.lpt(d, c, l, 0.5))(lin)
    rho = jax.jit(lambda x: jaxpm.density(d, x))(dx)
    for arr, full in ((lin, 16**3), (dx, 16**3 * 3), (rho, 16**3)):
        shards = arr.addressable_shards
        assert len(shards) == 8
        assert all(s.data.size == full // 8 for s in shards)
        assert len({s.device for s in shards}) == 8
    # the shards tile the array: every device a different block
    assert len({tuple((sl.start or 0) for sl in s.index[:2]) for s in rho.addressable_shards}) == 8
    assert abs(float(np.mean(np.asarray(rho))) - 1.0) < 1e-6


@pytest.mark.parametrize("kwargs, name", [
    (dict(particles=12, pdims=(8, 1)), "pdims"),           # 12 not divisible by 8
    (dict(particles=16, pdims=(2, 2)), "pdims"),           # 4 != 8 devices
    (dict(particles=16, pdims=(2, 4), halo=5), "halo"),    # block side 4 < halo 5
    (dict(particles=16, pdims=(2, 4), halo=0), "halo"),
    (dict(particles=16, pdims=(2, 4), capacity=0.0), "capacity"),
    (dict(particles=16, pdims=(2, 4, 1)), "pdims"),
    (dict(particles=16, pdims=(1, 1), devices=jax.devices()[:1], halo=2), "halo"),
])
def test_bad_layouts_are_named(kwargs, name):
    kwargs = dict(kwargs)
    n = kwargs.pop("particles")
    with pytest.raises(ConfigError) as err:
        jaxpm.Domain.create(n, 100.0, **kwargs)
    assert err.value.parameter == name


def test_fewer_devices_on_request():
    d = jaxpm.Domain.create(16, 100.0, pdims=(2, 2), devices=jax.devices()[:4])
    x = d.put(np.arange(16**3, dtype=np.float32).reshape(16, 16, 16))
    assert {s.device for s in x.addressable_shards} == set(jax.devices()[:4])
