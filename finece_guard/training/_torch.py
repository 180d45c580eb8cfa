"""The training extra, checked once: importing :mod:`finece_guard.training` without it is a SetupError.

``training/__init__`` imports this module before any module that needs torch, transformers or peft,
so a missing extra says how to install it instead of failing with a bare ImportError.
"""

from finece_guard.errors import SetupError

try:
    import accelerate  # noqa: F401  # transformers' Trainer needs it
    import peft  # noqa: F401
    import torch  # noqa: F401
    import transformers  # noqa: F401
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise SetupError(
        f"`finece-guard train` needs torch, transformers, peft and accelerate ({exc}); "
        "install them with: pip install 'finece-guard[training]' (or run `make setup`)"
    ) from exc
