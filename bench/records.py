"""A measurement that failed, as a record: the one constructor of every failure record.

Records are the JSON objects of a bench or sweep file (docs/architecture.md, "Bench
record"). A successful record comes from :func:`bench.measure.measure`; a
failed one is a :class:`Failure` written with :meth:`Failure.to_record`, so
every failure has the same fields wherever it happened (the worker, the
transport, the export before it, a device that dropped out).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["Failure", "is_failure"]

#: what a failure record says of the measurement it was (as a plan or a bench target names it)
WHERE_FIELDS = ("device", "model", "artifact", "format", "precision", "resolution", "batch", "threads", "runtime",
                "inference_precision")


@dataclass(frozen=True)
class Failure:
    """A measurement that did not happen, and why.

    Attributes:
        error: the reason, on one line.
        error_type: the class of the error (``RemoteTimeoutError``, ``ExportError``, ...).
        where: which measurement: any of :data:`WHERE_FIELDS`.
        attempts: how many times it was tried (None: once, not retried).
        plan: the sweep's planned measurement, its resume key (None outside a sweep).
    """

    error: str
    error_type: str
    where: dict[str, Any] = field(default_factory=dict)
    attempts: int | None = None
    plan: dict[str, Any] | None = None

    @classmethod
    def of(cls, exc: BaseException, *, attempts: int | None = None, plan: dict | None = None,
           **where: Any) -> Failure:
        """The failure an exception caused."""
        return cls(str(exc), type(exc).__name__, where, attempts, plan)

    def to_record(self) -> dict[str, Any]:
        """The record: the ``where`` fields (a plan's when given), ``error``, ``error_type``, ``attempts``, ``plan``."""
        where = {**(self.plan or {}), **self.where}
        record: dict[str, Any] = {k: where[k] for k in WHERE_FIELDS if k in where}
        record.update(error=" ".join(str(self.error).split()) or self.error_type, error_type=self.error_type)
        if self.attempts is not None:
            record["attempts"] = self.attempts
        if self.plan is not None:
            record["plan"] = self.plan
        return record


def is_failure(record: dict) -> bool:
    """Whether a record says a measurement failed (a worker's own failure record included)."""
    return "error" in record and "p50_ms" not in record
