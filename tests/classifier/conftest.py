"""The classifier's tests run on both engines: the Python one and the compiled one.

The compiled engine (classifier/compiled.pyx) is built by ``pip install`` when a C compiler
is present. Without it its runs are skipped, unless ``NEWSMON_REQUIRE_COMPILED`` is set
(CI sets it), in which case they fail: a CI that silently tested only one engine would
prove nothing about the other.
"""

from __future__ import annotations

import os

import pytest

from classifier.engine import EngineChoice, _compiled_module


def compiled_available() -> bool:
    return _compiled_module() is not None


def require_compiled() -> None:
    if compiled_available():
        return
    if os.environ.get("NEWSMON_REQUIRE_COMPILED"):
        pytest.fail("the compiled classifier engine is not built (NEWSMON_REQUIRE_COMPILED)")
    pytest.skip("the compiled classifier engine is not built (no C compiler at install)")


@pytest.fixture(scope="module", params=["python", "compiled"])
def engine(request: pytest.FixtureRequest) -> EngineChoice:
    choice: EngineChoice = request.param
    if choice == "compiled":
        require_compiled()
    return choice
