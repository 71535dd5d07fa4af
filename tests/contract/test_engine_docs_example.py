"""
The example engine of docs/engines.md, run under the engine contract as printed.

The page's two ``python`` blocks marked ``<!-- example: token_file.py -->`` and
``<!-- example: test_token_file.py -->`` are loaded as those modules; the
contract class of the second is collected here, so a change to the page that
breaks the example, or a change to gatepass that breaks what the page teaches,
fails this file.
"""

from __future__ import annotations

import re
import sys
import types
from pathlib import Path

DOC = Path(__file__).resolve().parents[2] / "docs" / "engines.md"


def example(name: str) -> str:
    """Return the code of the block the page marks as ``name``."""
    text = DOC.read_text(encoding="utf-8")
    marker = re.escape(f"<!-- example: {name} -->")
    found = re.search(marker + r"\n```python\n(.*?)\n```\n", text, flags=re.DOTALL)
    assert found is not None, f"docs/engines.md has no example {name}"
    return found.group(1)


def load(name: str) -> types.ModuleType:
    """Run an example block as the module ``name`` (registered, so it imports)."""
    module = types.ModuleType(name.removesuffix(".py"))
    module.__file__ = f"{DOC}#{name}"
    sys.modules[module.__name__] = module
    code = compile(example(name), module.__file__, "exec")
    exec(code, module.__dict__)  # noqa: S102 - the page's own example, by design
    return module


load("token_file.py")
TestDocsExampleEngine = load("test_token_file.py").TestTokenFileEngine


def test_the_example_engine_is_built_from_its_table() -> None:
    """The page's engine is a ConfiguredEngine whose table is parsed the shared way."""
    engine_module = sys.modules["token_file"]
    assert engine_module.TokenFileEngine.kind == "token-file"
    assert engine_module.TokenFileSettings.action_field == "grants"
