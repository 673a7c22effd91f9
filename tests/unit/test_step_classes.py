"""The step classes of the Linux kinds are plain subclasses of the Step dataclass (no
``@dataclass`` of their own: start-up time, dsrctl/steps.py) and keep what the decorator
gave: the fields, equality and hashing by class and fields, a repr that names the class,
and immutability, also against attributes that are not fields."""

from __future__ import annotations

import dataclasses

import pytest

from dsrctl.kinds.registry import LINUX
from dsrctl.steps import Phase, Step

STEPS = [kind.step for kind in LINUX]


@pytest.mark.parametrize("cls", STEPS, ids=[cls.__name__ for cls in STEPS])
def test_a_kind_step_is_a_step_dataclass_without_fields_of_its_own(cls: type[Step]) -> None:
    assert "__dataclass_params__" not in vars(cls)  # not decorated again
    assert [f.name for f in dataclasses.fields(cls)] == [f.name for f in dataclasses.fields(Step)]
    step = cls("x:a", 1, 2, Phase.HARDEN, "why")
    same = cls("x:a", 1, 2, Phase.HARDEN, "why")
    assert step == same and hash(step) == hash(same) and len({step, same}) == 1
    assert step != cls("x:a", 1, 3, Phase.HARDEN, "why")
    other = next(c for c in STEPS if c is not cls)
    assert step != other("x:a", 1, 2, Phase.HARDEN, "why")  # another kind, same fields
    assert repr(step) == (
        f"{cls.__name__}(resource='x:a', before=1, after=2, phase=<Phase.HARDEN: 4>, note='why')"
    )
    back = step.inverse()
    assert type(back) is cls and (back.before, back.after, back.note) == (2, 1, "rollback")


@pytest.mark.parametrize("cls", STEPS, ids=[cls.__name__ for cls in STEPS])
def test_a_kind_step_is_immutable(cls: type[Step]) -> None:
    step = cls("x:a", 1, 2, Phase.HARDEN)
    with pytest.raises(dataclasses.FrozenInstanceError):
        step.after = 3  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        step.extra = 3  # type: ignore[attr-defined]
    with pytest.raises(dataclasses.FrozenInstanceError):
        del step.note
    assert not hasattr(step, "extra") and step.after == 2
