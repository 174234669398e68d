"""Atomic integer ids from the counters table."""

from sputnik.models import CounterModel


def next_id(name: str) -> int:
    """Return the next id of a sequence; one atomic UpdateItem, so parallel callers never share one."""
    counter = CounterModel(name)
    counter.update(actions=[CounterModel.value.add(1)])
    return int(counter.value)
