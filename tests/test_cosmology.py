"""Background, growth and linear power against analytic solutions, jax_cosmo and scipy."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.integrate import quad

from jaxpm.cosmology import Cosmology, E, TabulatedPower, growth_table, sigma_R
from jaxpm.errors import ConfigError


def test_einstein_de_sitter_growth_is_analytic():
    g = growth_table(Cosmology(Omega_m=1.0, Omega_b=0.04))
    a = jnp.array([0.01, 0.05, 0.1, 0.3, 0.6, 1.0])
    np.testing.assert_allclose(g.D1(a), a, rtol=1e-6)
    np.testing.assert_allclose(g.D2(a), -3.0 / 7.0 * a**2, rtol=1e-6)
    np.testing.assert_allclose(g.f1(a), 1.0, rtol=1e-6)
    np.testing.assert_allclose(g.f2(a), 2.0, rtol=2e-6)
    np.testing.assert_allclose(E(Cosmology(Omega_m=1.0, Omega_b=0.04), a), a**-1.5, rtol=1e-12)


def test_lcdm_growth_matches_jax_cosmo():
    import jax_cosmo as jc

    c = Cosmology()
    jcos = jc.Cosmology(Omega_c=c.Omega_m - c.Omega_b, Omega_b=c.Omega_b, h=c.h, n_s=c.n_s, sigma8=c.sigma8,
                        Omega_k=0.0, w0=c.w0, wa=c.wa)
    a = jnp.array([0.05, 0.1, 0.25, 0.5, 0.75, 1.0])
    g = growth_table(c)
    np.testing.assert_allclose(g.D1(a), jc.background.growth_factor(jcos, a), rtol=3e-4)
    np.testing.assert_allclose(g.f1(a), jc.background.growth_rate(jcos, a), rtol=3e-4)
    np.testing.assert_allclose(E(c, a), jnp.sqrt(jc.background.Esqr(jcos, a)), rtol=1e-10)


def test_lcdm_second_order_growth_ratio():
    # D2 ~ -3/7 D1^2 Omega_m(a)^(-1/143) (Bouchet et al. 1995): a per-cent-level independent check
    c = Cosmology()
    g = growth_table(c)
    for a in (0.2, 0.5, 1.0):
        om = c.Omega_m * a**-3 / float(E(c, a)) ** 2
        expect = -3.0 / 7.0 * float(g.D1(a)) ** 2 * om ** (-1.0 / 143.0)
        assert abs(float(g.D2(a)) / expect - 1) < 2e-3


def test_sigma8_normalisation_by_independent_quadrature():
    c = Cosmology(sigma8=0.77)
    pk = jax.jit(c.linear_power)

    def integrand(lnk):
        k = math.exp(lnk)
        x = 8.0 * k
        w = 3 * (math.sin(x) - x * math.cos(x)) / x**3
        return k**3 * float(pk(jnp.asarray(k))) * w**2 / (2 * math.pi**2)

    s2, _ = quad(integrand, math.log(1e-6), math.log(1e3), limit=400)
    assert abs(math.sqrt(s2) / 0.77 - 1) < 1e-6


def test_eisenstein_hu_matches_jax_cosmo_power():
    import jax_cosmo as jc

    c = Cosmology()
    jcos = jc.Cosmology(Omega_c=c.Omega_m - c.Omega_b, Omega_b=c.Omega_b, h=c.h, n_s=c.n_s, sigma8=c.sigma8,
                        Omega_k=0.0, w0=c.w0, wa=c.wa)
    k = jnp.logspace(-3, 0.5, 30)
    # jax_cosmo normalises sigma8 with a coarser Romberg integral: agree to its accuracy (0.5 %)
    np.testing.assert_allclose(c.linear_power(k), jc.power.linear_matter_power(jcos, k), rtol=5e-3)


def test_tabulated_power_reproduces_table_and_rescales():
    c = Cosmology()
    k = np.logspace(-4, 2, 600)
    pk = np.asarray(c.linear_power(jnp.asarray(k)))
    tab = Cosmology(power=TabulatedPower(k, 3.0 * pk))  # wrong amplitude: rescaled to sigma8
    kk = jnp.logspace(-3, 1, 50)
    np.testing.assert_allclose(tab.linear_power(kk), c.linear_power(kk), rtol=2e-3)
    raw = Cosmology(power=TabulatedPower(k, 3.0 * pk, rescale_to_sigma8=False))
    np.testing.assert_allclose(raw.linear_power(kk), 3.0 * c.linear_power(kk), rtol=2e-3)
    s8 = sigma_R(lambda q: tab.linear_power(q), 8.0)
    assert abs(float(s8) / float(c.sigma8) - 1) < 1e-6


def test_tabulated_power_from_file(tmp_path):
    k = np.logspace(-3, 1, 100)
    np.savetxt(tmp_path / "pk.txt", np.c_[k, k / (1 + (k / 0.02) ** 2.5)], header="k P")
    tab = TabulatedPower.from_file(str(tmp_path / "pk.txt"), rescale_to_sigma8=False)
    np.testing.assert_allclose(Cosmology(power=tab).linear_power(jnp.asarray(k[10:20])),
                               (k / (1 + (k / 0.02) ** 2.5))[10:20], rtol=1e-10)
    with pytest.raises(ConfigError, match="power_table"):
        TabulatedPower.from_file(str(tmp_path / "missing.txt"))


def test_gradients_through_growth_and_power_match_finite_differences():
    base = Cosmology()

    def f(om, s8):
        c = base.replace(Omega_m=om, sigma8=s8)
        g = growth_table(c)
        return g.D1(0.3) * g.D2(0.5) * c.linear_power(jnp.asarray(0.1))

    x = (0.31, 0.81)
    grad = jax.jit(jax.grad(f, argnums=(0, 1)))(*x)
    eps = 1e-6
    for i in range(2):
        xp, xm = list(x), list(x)
        xp[i] += eps
        xm[i] -= eps
        fd = (f(*xp) - f(*xm)) / (2 * eps)
        assert abs(float(grad[i]) / float(fd) - 1) < 1e-6
    # d ln P / d sigma8 = 2 / sigma8 exactly
    dlnp = jax.grad(lambda s: jnp.log(base.replace(sigma8=s).linear_power(jnp.asarray(0.1))))(0.81)
    assert abs(float(dlnp) - 2 / 0.81) < 1e-10


def test_cosmology_object_reused_across_traces():
    # one object, several jitted/differentiated traces: nothing cached on it may leak a tracer
    c = Cosmology()
    f = lambda cc: growth_table(cc).D1(0.5) * cc.linear_power(jnp.asarray(0.2))
    v1 = jax.jit(f)(c)
    g1 = jax.grad(lambda om: f(c.replace(Omega_m=om)))(0.3)
    v2 = f(c)
    g2 = jax.jit(jax.grad(lambda om: f(c.replace(Omega_m=om))))(0.3)
    assert np.isclose(v1, v2, rtol=1e-12) and np.isclose(g1, g2, rtol=1e-10)


@pytest.mark.parametrize(
    "kw, name",
    [({"Omega_m": 0.0}, "Omega_m"), ({"Omega_m": 1.2}, "Omega_m"), ({"Omega_b": 0.5}, "Omega_b"),
     ({"h": -0.7}, "h"), ({"sigma8": 0.0}, "sigma8"), ({"n_s": -1.0}, "n_s"), ({"w0": 0.5}, "w0 + wa"),
     ({"Omega_m": float("nan")}, "Omega_m")],
)
def test_unphysical_cosmology_is_rejected(kw, name):
    with pytest.raises(ConfigError, match=name.replace("+", r"\+")):
        Cosmology(**kw)
