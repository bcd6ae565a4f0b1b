"""What moderators and admins do, whatever screen they do it from."""

from mitreden.store import StoreError


class Refusal(ValueError):
    """Something the staff service will not do, and why. `key` names the sentence in the
    catalogues (`refused_*`) and `params` fill it, so a screen says why in its reader's
    language; str() is the English line the command line prints."""

    def __init__(self, message: str, key: str = "", **params: object) -> None:
        super().__init__(message)
        self.key, self.params = key, params


class GroupError(StoreError, Refusal):
    """A group edit refused; a StoreError too, like the store's own refusals of group edits."""
