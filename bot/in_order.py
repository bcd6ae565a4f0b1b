"""Work handled side by side, except where order matters: a channel handles the updates of
different people at once, and each person's (each chat's) one after another, in the order the
platform gave them. Without this, a resident who presses a button and then types would find
the text handled before the press whenever the press waited for the network."""

import asyncio
from collections.abc import Hashable, Iterable


class Place:
    """One piece of work's place in its lines: `turn()` waits until the work placed before it
    in any of its lines has left; `leave()` lets what waits behind it go. Call `leave` when
    the work ends however it ends (a task's done callback), or the lines stop there."""

    def __init__(self, lines: "InOrder", keys: tuple[Hashable, ...]) -> None:
        self._lines, self._keys = lines, keys
        self._before = {lines.last[key] for key in keys if key in lines.last}
        self._done = asyncio.get_running_loop().create_future()
        for key in keys:
            lines.last[key] = self._done

    async def turn(self) -> None:
        if self._before:
            # asyncio.wait, not await: a cancelled waiter must not cancel what it waits for.
            await asyncio.wait(self._before)

    def leave(self) -> None:
        if not self._done.done():
            self._done.set_result(None)
        for key in self._keys:
            if self._lines.last.get(key) is self._done:
                del self._lines.last[key]


class InOrder:
    """Lines of work by key (a chat, a sender): `place(keys)` puts the next piece of work at
    the end of each of its lines at once, so the order of the calls is the order kept, and
    work that shares no line with it runs meanwhile. A piece in two lines waits for both;
    as each is placed after everything already placed, no two pieces can wait for each other."""

    def __init__(self) -> None:
        self.last: dict[Hashable, asyncio.Future[None]] = {}

    def place(self, keys: Iterable[Hashable]) -> Place:
        return Place(self, tuple(dict.fromkeys(keys)))
