"""The channel-agnostic conversation engine, the flow definitions and the message catalogues.

`Engine` is imported when first asked for (PEP 562): the settings read the catalogue's
languages through this package, and `mitreden --help` should not load the NLP and the
store that the engine needs.
"""

from typing import TYPE_CHECKING, Any

from mitreden.flows.messages import Attachment, Choice, Inbound, Outbound

if TYPE_CHECKING:
    from mitreden.flows.engine import Engine

__all__ = ["Attachment", "Choice", "Engine", "Inbound", "Outbound"]


def __getattr__(name: str) -> Any:
    if name == "Engine":
        from mitreden.flows.engine import Engine

        return Engine
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
