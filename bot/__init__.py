"""Channel adapters: each turns its platform's updates into Inbound and renders Outbound back."""


class ChannelError(RuntimeError):
    """A channel cannot start or go on (refused login, a room it cannot join); the message
    says what to fix."""
