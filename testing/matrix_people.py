"""People on the test homeserver: real matrix-nio clients, each with its own device and keys.

A resident opens a direct chat with the bot the way Element does (is_direct, encrypted unless
asked not to), writes, and waits for the bot's answer. A moderator sits in a room with the bot.
Waits are bounded by a deadline, so a missing answer fails the test instead of hanging it.
"""

import asyncio
import itertools
from collections.abc import Callable
from pathlib import Path
from typing import Any

from nio import (
    AsyncClient,
    AsyncClientConfig,
    LoginResponse,
    RoomCreateResponse,
    RoomSendResponse,
    SyncResponse,
)
from synapse_server import SynapseServer

from mitreden.bot.matrix import exchange_keys

PASSWORD = "correct horse battery staple"
SYNC_TIMEOUT_MS = 2_000
DEADLINE = 60.0
ENCRYPTION_STATE = {
    "type": "m.room.encryption",
    "state_key": "",
    "content": {"algorithm": "m.megolm.v1.aes-sha2"},
}

_numbers = itertools.count(1)


def fresh_localpart(name: str) -> str:
    """A localpart no other test in this session has used, since users outlive a test."""
    return f"{name}{next(_numbers)}"


class MatrixPerson:
    """One account with one encryption-enabled device (a password login gives the device)."""

    def __init__(self, synapse: SynapseServer, directory: Path, name: str) -> None:
        self.user_id, _ = synapse.register(fresh_localpart(name), PASSWORD)
        store = directory / self.user_id.strip("@").replace(":", "_")
        store.mkdir(parents=True)
        config = AsyncClientConfig(encryption_enabled=True, store_sync_tokens=True)
        self.client = AsyncClient(
            synapse.base_url, self.user_id, store_path=str(store), config=config
        )
        self.room_id = ""
        # Every message event others sent, per room, in order of arrival (decrypted if we could).
        self.received: dict[str, list[Any]] = {}
        self._read: dict[str, int] = {}

    async def login(self) -> "MatrixPerson":
        response = await self.client.login(PASSWORD, device_name="test")
        assert isinstance(response, LoginResponse), response
        await self.sync(0)
        return self

    async def sync(self, timeout_ms: int = SYNC_TIMEOUT_MS) -> SyncResponse:
        """Sync, keep what others said, and do the key work a real client's loop does."""
        response = await self.client.sync(timeout=timeout_ms)
        assert isinstance(response, SyncResponse), response
        for room_id, info in response.rooms.join.items():
            for event in info.timeline.events:
                kind = event.source.get("type")
                if event.sender != self.user_id and kind not in ("m.room.member",):
                    self.received.setdefault(room_id, []).append(event)
        await exchange_keys(self.client)
        return response

    async def until(self, done: Callable[[], bool], what: str) -> None:
        async with asyncio.timeout(DEADLINE):
            while not done():
                await self.sync()
        assert done(), what

    async def open_chat(self, bot: str, encrypted: bool = True) -> str:
        """A direct chat with the bot, as Element starts one; waits until the bot is in it."""
        created = await self.client.room_create(
            invite=[bot], is_direct=True, initial_state=[ENCRYPTION_STATE] if encrypted else []
        )
        assert isinstance(created, RoomCreateResponse), created
        self.room_id = created.room_id
        await self.until(lambda: self.member(bot), f"{bot} joined the chat")
        return self.room_id

    def member(self, user_id: str, room_id: str | None = None) -> bool:
        room = self.client.rooms.get(room_id or self.room_id)
        return room is not None and user_id in room.users

    async def say(self, text: str, room_id: str | None = None, **content: Any) -> str:
        sent = await self.client.room_send(
            room_id or self.room_id,
            "m.room.message",
            {"msgtype": "m.text", "body": text, **content},
            ignore_unverified_devices=True,
        )
        assert isinstance(sent, RoomSendResponse), sent
        return sent.event_id

    def new(self, room_id: str | None = None) -> list[Any]:
        """Messages that arrived since the last call, without marking them read."""
        room_id = room_id or self.room_id
        return self.received.get(room_id, [])[self._read.get(room_id, 0) :]

    def take(self, room_id: str | None = None) -> list[Any]:
        room_id = room_id or self.room_id
        fresh = self.new(room_id)
        self._read[room_id] = len(self.received.get(room_id, []))
        return fresh

    async def answer(self, text: str, expect: str) -> list[str]:
        """Write `text` and wait until a bot message containing `expect` arrives; all the
        bodies that came with it."""
        await self.say(text)
        return await self.wait_for(expect)

    async def wait_for(self, expect: str, room_id: str | None = None) -> list[str]:
        def arrived() -> bool:
            return any(expect in getattr(e, "body", "") for e in self.new(room_id))

        await self.until(arrived, f"a message containing {expect!r}")
        return [getattr(e, "body", "") for e in self.take(room_id)]

    async def close(self) -> None:
        await self.client.close()
