"""`edit_live_message`: the not-deleted check and the write are one atomic step, so an edit
racing a delete on a pooled backend never lands on the deleted message."""

from __future__ import annotations

from storage import Storage
from storage.base import Record
from tests.storage.test_contract import Clock, client, new_id, room, send  # noqa: F401


async def test_edit_live_message(storage: Storage, clock: Clock, room: Record  # noqa: F811
                                 ) -> None:
    sent = await send(storage, room, clock)
    at = clock()
    edited = await storage.edit_live_message(sent["id"], {"content": "edited", "edited_at": at})
    assert edited is not None and edited["content"] == "edited" and edited["edited_at"] == at
    await storage.set_message_deleted(sent["id"], True, "u1", clock())
    assert await storage.edit_live_message(sent["id"], {"content": "late"}) is None
    stored = await storage.get_message(room["client_id"], sent["id"])
    assert stored is not None and stored["content"] == "edited" and stored["is_deleted"]
    assert await storage.edit_live_message(new_id(), {"content": "x"}) is None
