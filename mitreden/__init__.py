"""mitreden: a participation channel that hears residents through the messengers they use."""

__version__ = "0.1.0"
