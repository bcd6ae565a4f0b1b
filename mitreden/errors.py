"""The one kind of error an operator can fix.

A setting, a file, a database that is not there, a channel that refuses to start: each such
error says what to fix, and `mitreden` prints that one line and exits with 2 instead of a
traceback. Every module's own error (ConfigError, StoreError, ...) is also an OperatorError,
so the command line catches them all without importing the modules that define them (which
would load the store and the NLP for `mitreden --help`).
"""


class OperatorError(Exception):
    """Something the operator can fix; the message says what."""
