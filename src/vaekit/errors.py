"""The errors a user can cause and fix: one base class, so that the CLI tells them from bugs.

Every error that bad input can raise (a config key, a data file, a run directory, a batch, a command's
option) is a :class:`VaekitError`; the command line prints its message as one line and exits with
``exit_code``. Anything else that escapes is a bug in vaekit and shows its traceback. Each class also
derives from the builtin it stands for (``ValueError``, ``FileNotFoundError``, ...), so ``except
ValueError`` in a user's code keeps working. This module imports nothing, so every layer may use it.
"""

from __future__ import annotations


class VaekitError(Exception):
    """Base of the errors caused by input a user can fix (config, data, files, options)."""

    exit_code = 2


class ConfigError(VaekitError, ValueError):
    """A configuration value or key is invalid."""


class UsageError(VaekitError, ValueError):
    """A command or API call asked for something this run or model cannot do (an option out of range,
    a conditional feature of an unconditional model, ...)."""


class UnknownNameError(VaekitError, KeyError):
    """A name is not in a registry (model, likelihood, objective, ...)."""

    def __str__(self) -> str:  # KeyError quotes its message; this one is a sentence
        return str(self.args[0]) if self.args else ""


class DataError(VaekitError, ValueError):
    """Data that cannot be used as given (NaN or infinite values, no examples, no labels, ...)."""


class RunError(VaekitError, ValueError):
    """A run directory is unusable as asked: corrupt, mismatched, or holding something else."""


class RunNotFoundError(RunError, FileNotFoundError):
    """A run directory, or a file a run needs, does not exist."""


class RunExistsError(RunError, FileExistsError):
    """The output folder holds something that would be overwritten."""


class TrainingFailedError(VaekitError, RuntimeError):
    """Training finished but its result is not usable (most updates skipped, non-finite metrics).
    The run is kept and marked; the command exits with 1."""

    exit_code = 1


class NonFiniteError(VaekitError, ArithmeticError):
    """A model gave NaN or infinite values where a number is due (its ELBO, its log-likelihood): the model
    is broken (a diverged run), so there is no result to report. The command exits with 1."""

    exit_code = 1
