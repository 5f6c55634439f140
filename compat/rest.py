"""REST API routes (SPEC §3): each handler parses (done by its `Route`), calls a service, renders.

`ROUTES` is the single table both the router and `/openapi.json` read.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from app import schemas as s
from compat.http import ADMIN, CLIENT_KEY, Call, Result, Route, add_routes
from storage import MessageQuery, NotificationQuery, RoomQuery

API = "/api/v1"


# -- clients and tokens --------------------------------------------------------------------

async def create_client(call: Call) -> Result:
    client = await call.services.clients.create(
        call.principal, call.body["name"], call.body.get("description"))
    return Result(client, status=201)


async def list_clients(call: Call) -> Result:
    items, total = await call.services.clients.list(
        call.principal, call.query["skip"], call.query["limit"])
    return Result(items, total=total)


async def get_client(call: Call) -> Result:
    return Result(await call.services.clients.get(call.principal, call.path["client_id"]))


async def delete_client(call: Call) -> Result:
    await call.services.clients.delete(call.principal, call.path["client_id"])
    return Result(message="Client deleted")


async def get_me(call: Call) -> Result:
    return Result(await call.services.clients.me(call.principal))


async def rotate_key(call: Call) -> Result:
    return Result(await call.services.clients.rotate_key(call.principal))


async def rotate_token_secret(call: Call) -> Result:
    return Result(await call.services.clients.rotate_token_secret(call.principal))


async def create_token(call: Call) -> Result:
    return Result(await call.services.clients.issue_token(call.principal, call.body), status=201)


# -- rooms ---------------------------------------------------------------------------------

async def create_room(call: Call) -> Result:
    return Result(await call.services.rooms.create(call.principal, call.body), status=201)


async def list_rooms(call: Call) -> Result:
    items, total = await call.services.rooms.list(call.principal, RoomQuery(**call.query))
    return Result(items, total=total)


async def get_room(call: Call) -> Result:
    return Result(await call.services.rooms.access(call.principal, call.path["room_id"]))


async def update_room(call: Call) -> Result:
    room = await call.services.rooms.update(call.principal, call.path["room_id"], call.body)
    return Result(room)


async def delete_room(call: Call) -> Result:
    await call.services.rooms.delete(call.principal, call.path["room_id"])
    return Result(message="Room deleted")


async def deactivate_room(call: Call) -> Result:
    return Result(await call.services.rooms.set_active(call.principal, call.path["room_id"], False))


async def activate_room(call: Call) -> Result:
    return Result(await call.services.rooms.set_active(call.principal, call.path["room_id"], True))


async def join_room(call: Call) -> Result:
    participant = await call.services.rooms.join(call.principal, call.path["room_id"], call.body)
    return Result(participant, status=201)


async def leave_room(call: Call) -> Result:
    await call.services.rooms.leave(call.principal, call.path["room_id"],
                                    call.body.get("user_id"))
    return Result(message="Left the room")


async def list_participants(call: Call) -> Result:
    items, total = await call.services.rooms.participants(
        call.principal, call.path["room_id"], call.query["skip"], call.query["limit"])
    return Result(items, total=total)


async def online(call: Call) -> Result:
    return Result(await call.services.rooms.online(call.principal, call.path["room_id"]))


# -- messages ------------------------------------------------------------------------------

async def send_message(call: Call) -> Result:
    message, created = await call.services.messages.send(
        call.principal, call.path["room_id"], call.body)
    return Result(message, status=201 if created else 200)


def message_query(query: dict[str, Any]) -> MessageQuery:
    """`sort` by created_at or seq is the same order (seq = commit order). Without a `sort`,
    newest first, except with `after_seq`: oldest first, so catch-up pages are contiguous."""
    fields = {k: v for k, v in query.items() if k != "sort"}
    sort = query.get("sort")
    ascending = sort in ("created_at", "seq") if sort else "after_seq" in query
    return MessageQuery(ascending=ascending, **fields)


async def list_messages(call: Call) -> Result:
    items, total = await call.services.messages.history(
        call.principal, call.path["room_id"], message_query(call.query))
    return Result(items, total=total)


async def get_message(call: Call) -> Result:
    return Result(await call.services.messages.get(call.principal, call.path["message_id"]))


async def edit_message(call: Call) -> Result:
    message = await call.services.messages.edit(
        call.principal, call.path["message_id"], call.body)
    return Result(message)


async def delete_message(call: Call) -> Result:
    message = await call.services.messages.delete(
        call.principal, call.path["message_id"], call.query.get("user_id"))
    return Result(message)


async def restore_message(call: Call) -> Result:
    return Result(await call.services.messages.restore(call.principal, call.path["message_id"]))


# -- notifications -------------------------------------------------------------------------

async def create_notification(call: Call) -> Result:
    notification = await call.services.notifications.create(call.principal, call.body)
    return Result(notification, status=201)


async def list_notifications(call: Call) -> Result:
    items, total = await call.services.notifications.list(
        call.principal, NotificationQuery(**call.query))
    return Result(items, total=total)


async def get_notification(call: Call) -> Result:
    notification = await call.services.notifications.get(
        call.principal, call.path["notification_id"])
    return Result(notification)


# -- the table -----------------------------------------------------------------------------

ROOM = f"{API}/rooms/{{room_id}}"
MESSAGE = f"{API}/messages/{{message_id}}"

ROUTES: list[Route] = [
    Route("POST", f"{API}/clients", create_client, "Create a client (tenant)", "clients",
          auth=ADMIN, body=s.ClientCreate, response=s.ClientSecretsOut, status=201),
    Route("GET", f"{API}/clients", list_clients, "List clients", "clients", auth=ADMIN,
          query=s.PageQuery, response=s.ClientOut, many=True),
    Route("GET", f"{API}/clients/me", get_me, "The calling client (client key)", "clients",
          auth=CLIENT_KEY, response=s.ClientOut),
    Route("POST", f"{API}/clients/me/rotate-key", rotate_key,
          "New API key; the old one stops working at once", "clients",
          auth=CLIENT_KEY, response=s.ClientSecretsOut),
    Route("POST", f"{API}/clients/me/rotate-token-secret", rotate_token_secret,
          "New token secret; user tokens signed with the old one stop working", "clients",
          auth=CLIENT_KEY, response=s.ClientSecretsOut),
    Route("GET", f"{API}/clients/{{client_id}}", get_client, "Get a client", "clients",
          auth=ADMIN, response=s.ClientOut),
    Route("DELETE", f"{API}/clients/{{client_id}}", delete_client,
          "Delete a client and all its data", "clients", auth=ADMIN),
    Route("POST", f"{API}/tokens", create_token, "Mint a user token (client key)", "tokens",
          auth=CLIENT_KEY, body=s.TokenCreate, response=s.TokenOut, status=201),
    Route("POST", f"{API}/rooms", create_room, "Create a room", "rooms",
          auth=CLIENT_KEY, body=s.RoomCreate, response=s.RoomOut, status=201),
    Route("GET", f"{API}/rooms", list_rooms, "List rooms", "rooms",
          query=s.RoomListQuery, response=s.RoomOut, many=True,
          description="With a user token: public rooms plus the private rooms the user is in."),
    Route("GET", ROOM, get_room, "Get a room", "rooms", response=s.RoomOut),
    Route("PUT", ROOM, update_room, "Update a room", "rooms",
          auth=CLIENT_KEY, body=s.RoomUpdate, response=s.RoomOut),
    Route("DELETE", ROOM, delete_room, "Delete a room with its messages and participants",
          "rooms", auth=CLIENT_KEY),
    Route("POST", f"{ROOM}/deactivate", deactivate_room, "Deactivate a room", "rooms",
          auth=CLIENT_KEY, response=s.RoomOut),
    Route("POST", f"{ROOM}/activate", activate_room, "Activate a room", "rooms",
          auth=CLIENT_KEY, response=s.RoomOut),
    Route("POST", f"{ROOM}/join", join_room, "Add a participant", "participants",
          body=s.JoinRoom, response=s.ParticipantOut, status=201),
    Route("POST", f"{ROOM}/leave", leave_room, "Remove a participant", "participants",
          body=s.LeaveRoom),
    Route("GET", f"{ROOM}/participants", list_participants, "List participants",
          "participants", query=s.PageQuery, response=s.ParticipantOut, many=True),
    Route("GET", f"{ROOM}/online", online, "Users with a live connection", "participants",
          response=s.OnlineOut),
    Route("POST", f"{ROOM}/messages", send_message, "Send a message", "messages",
          body=s.MessageCreate, response=s.MessageOut, status=201, alt_statuses=(200,),
          description="201 once stored. A repeated client_msg_id from the same sender returns "
                      "the stored message with 200 and broadcasts nothing."),
    Route("GET", f"{ROOM}/messages", list_messages, "Message history", "messages",
          query=s.MessageListQuery, response=s.MessageOut, many=True,
          description="Newest first by default; with after_seq and no sort, oldest first."),
    Route("GET", MESSAGE, get_message, "Get a message", "messages", response=s.MessageOut),
    Route("PUT", MESSAGE, edit_message, "Edit a message", "messages",
          body=s.MessageUpdate, response=s.MessageOut),
    Route("DELETE", MESSAGE, delete_message, "Soft-delete a message", "messages",
          query=s.DeleteMessageQuery, response=s.MessageOut),
    Route("POST", f"{MESSAGE}/restore", restore_message, "Restore a deleted message",
          "messages", response=s.MessageOut),
    Route("POST", f"{API}/notifications", create_notification, "Send a notification",
          "notifications", auth=CLIENT_KEY, body=s.NotificationCreate,
          response=s.NotificationOut, status=201),
    Route("GET", f"{API}/notifications", list_notifications, "List notifications",
          "notifications", query=s.NotificationListQuery, response=s.NotificationOut,
          many=True),
    Route("GET", f"{API}/notifications/{{notification_id}}", get_notification,
          "Get a notification", "notifications", response=s.NotificationOut),
]


def setup(app: web.Application) -> None:
    add_routes(app, ROUTES)
