"""User-facing errors: each names the parameter, the value given and what is allowed."""


class ConfigError(ValueError):
    """Bad input, detected before any compilation. ``str(err)`` is a one-line message."""

    def __init__(self, parameter: str, value, allowed: str):
        self.parameter = parameter
        self.value = value
        self.allowed = allowed
        super().__init__(f"invalid {parameter} = {value!r}: allowed is {allowed}")


class MigrationOverflow(RuntimeError):
    """A distributed run's particle-migration buffers were too small (its results were poisoned with
    NaN); the message names the remedy (see :mod:`jaxpm.halo`)."""
