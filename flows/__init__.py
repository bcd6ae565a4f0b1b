"""The channel-agnostic conversation engine, the flow definitions and the message catalogues."""

from mitreden.flows.engine import Engine
from mitreden.flows.messages import Attachment, Choice, Inbound, Outbound

__all__ = ["Attachment", "Choice", "Engine", "Inbound", "Outbound"]
