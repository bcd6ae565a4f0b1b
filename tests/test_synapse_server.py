"""The test homeserver works as the Matrix channel's tests will use it: users, rooms, sync, E2E."""

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from matrix_people import ENCRYPTION_STATE, PASSWORD, fresh_localpart
from nio import (
    AsyncClient,
    AsyncClientConfig,
    JoinResponse,
    LoginResponse,
    RoomCreateResponse,
    RoomMessageText,
    RoomSendResponse,
    SyncResponse,
)
from synapse_server import SynapseError, SynapseServer

from mitreden.bot.matrix import exchange_keys

# An upper bound for one long-poll sync; a message normally arrives in milliseconds.
SYNC_TIMEOUT_MS = 10_000
# How long a test waits for an event before it fails instead of hanging.
EVENT_DEADLINE = 30.0


@pytest.fixture
async def plain_clients(synapse: SynapseServer) -> AsyncIterator[tuple[AsyncClient, AsyncClient]]:
    """Two unencrypted clients using tokens from shared-secret registration."""
    clients = []
    for name in ("alice", "bob"):
        user_id, token = synapse.register(fresh_localpart(name), PASSWORD)
        client = AsyncClient(synapse.base_url, user_id)
        client.user_id, client.access_token = user_id, token
        clients.append(client)
    yield clients[0], clients[1]
    for client in clients:
        await client.close()


@pytest.fixture
async def e2e_clients(
    synapse: SynapseServer, tmp_path: Path
) -> AsyncIterator[tuple[AsyncClient, AsyncClient]]:
    """Two encryption-enabled clients; a password login gives each a device for its Olm keys."""
    clients = []
    for name in ("alice", "bob"):
        user_id, _ = synapse.register(fresh_localpart(name), PASSWORD)
        store = tmp_path / name
        store.mkdir()
        config = AsyncClientConfig(encryption_enabled=True, store_sync_tokens=True)
        client = AsyncClient(synapse.base_url, user_id, store_path=str(store), config=config)
        assert isinstance(await client.login(PASSWORD, device_name=name), LoginResponse)
        clients.append(client)
    yield clients[0], clients[1]
    for client in clients:
        await client.close()


async def sync_once(client: AsyncClient) -> SyncResponse:
    response = await client.sync(timeout=SYNC_TIMEOUT_MS)
    assert isinstance(response, SyncResponse), response
    return response


async def settle_keys(client: AsyncClient) -> None:
    """Sync, then upload, query and claim keys as nio asks, as a real client's loop would."""
    await sync_once(client)
    await exchange_keys(client)


async def next_message(client: AsyncClient, room_id: str) -> object:
    """Sync until an event other than a membership change shows up in the room's timeline."""
    async with asyncio.timeout(EVENT_DEADLINE):
        while True:
            response = await sync_once(client)
            room = response.rooms.join.get(room_id)
            events = room.timeline.events if room else []
            messages = [event for event in events if event.source["type"] != "m.room.member"]
            if messages:
                return messages[0]


async def create_room_and_join(
    creator: AsyncClient, invitee: AsyncClient, **room_options: object
) -> str:
    created = await creator.room_create(invite=[invitee.user_id], **room_options)
    assert isinstance(created, RoomCreateResponse), created
    await sync_once(invitee)
    assert created.room_id in invitee.invited_rooms
    assert isinstance(await invitee.join(created.room_id), JoinResponse)
    return created.room_id


def test_register_gives_user_and_token(synapse: SynapseServer) -> None:
    localpart = fresh_localpart("carol")
    user_id, token = synapse.register(localpart, PASSWORD, admin=True)
    assert user_id == f"@{localpart}:{synapse.server_name}"
    assert token


def test_register_with_wrong_shared_secret_is_refused(synapse: SynapseServer) -> None:
    with pytest.raises(SynapseError, match=r"403.*HMAC incorrect"):
        synapse.register(fresh_localpart("mallory"), PASSWORD, shared_secret="wrong")


def test_failed_start_reports_the_log(tmp_path: Path) -> None:
    server = SynapseServer(tmp_path, extra_config={"database": {"name": "no-such-engine"}})
    with pytest.raises(SynapseError, match=r"exited with code [^0](?s:.*)no-such-engine"):
        server.start()


async def test_invited_user_receives_message(
    plain_clients: tuple[AsyncClient, AsyncClient],
) -> None:
    alice, bob = plain_clients
    room_id = await create_room_and_join(alice, bob)
    await sync_once(bob)
    sent = await alice.room_send(room_id, "m.room.message", {"msgtype": "m.text", "body": "Hallo"})
    assert isinstance(sent, RoomSendResponse), sent

    message = await next_message(bob, room_id)

    assert isinstance(message, RoomMessageText)
    assert (message.sender, message.body) == (alice.user_id, "Hallo")


async def test_encrypted_direct_message_is_decrypted(
    e2e_clients: tuple[AsyncClient, AsyncClient],
) -> None:
    alice, bob = e2e_clients
    await settle_keys(alice)
    await settle_keys(bob)
    room_id = await create_room_and_join(
        alice, bob, is_direct=True, initial_state=[ENCRYPTION_STATE]
    )
    await settle_keys(bob)
    await settle_keys(alice)
    assert alice.rooms[room_id].encrypted
    sent = await alice.room_send(
        room_id,
        "m.room.message",
        {"msgtype": "m.text", "body": "Geheim"},
        ignore_unverified_devices=True,
    )
    assert isinstance(sent, RoomSendResponse), sent

    message = await next_message(bob, room_id)

    assert isinstance(message, RoomMessageText), message
    assert message.decrypted
    assert (message.sender, message.body) == (alice.user_id, "Geheim")
