"""A whole sale through a client generated from boxoffice's own /openapi.json.

The client is made by `openapi-python-client generate` from the served document and used
as generated, unedited: typed models in, typed models out. Run by
tests/tests/openapi.rs, which starts the server, generates the client and passes:

    python3 generated_client_sale.py CLIENT_PARENT_DIR BASE_URL ADMIN_TOKEN USER_TOKEN USER

Every step asserts what the contract (design.md) says; any mismatch exits non-zero.
"""

import datetime
import sys

parent, base_url, admin_token, user_token, user = sys.argv[1:6]
sys.path.insert(0, parent)

from boxoffice_client import AuthenticatedClient, Client  # noqa: E402
from boxoffice_client.api.bookings import (  # noqa: E402
    cancel_booking,
    get_booking,
    list_bookings,
    purchase,
)
from boxoffice_client.api.events import (  # noqa: E402
    create_event,
    get_event,
    get_seats,
    list_events,
)
from boxoffice_client.api.holds import (  # noqa: E402
    confirm_hold,
    get_hold,
    place_hold,
    release_hold,
)
from boxoffice_client.api.ops import health, ready  # noqa: E402
from boxoffice_client.models import (  # noqa: E402
    BookingJson,
    BookingStatus,
    ConfirmBody,
    CreateEventBody,
    ErrorCode,
    ErrorJson,
    EventJson,
    HoldBody,
    HoldJson,
    HoldStatus,
    ItemJson,
    PurchaseBody,
    RowJson,
    SeatsBody,
    SeatStatus,
    SectionBody,
    SectionKind,
)


def expect(response, status, model):
    """The response has this status and parsed into this generated model."""
    assert response.status_code == status, (
        f"expected {status}, got {response.status_code}: {response.content!r}"
    )
    assert isinstance(response.parsed, model), (
        f"expected a {model.__name__}, got {response.parsed!r}"
    )
    return response.parsed


def expect_error(response, status, code):
    error = expect(response, status, ErrorJson)
    assert error.error.code == code, f"expected {code}, got {error.error.code}"
    assert error.error.message, "an error has a message"
    return error


def section(event, kind):
    return next(s for s in event.sections if s.kind == kind)


anyone = Client(base_url=base_url, raise_on_unexpected_status=True)
admin = AuthenticatedClient(base_url=base_url, token=admin_token, raise_on_unexpected_status=True)
buyer = AuthenticatedClient(base_url=base_url, token=user_token, raise_on_unexpected_status=True)
stranger = AuthenticatedClient(base_url=base_url, token="not-a-token", raise_on_unexpected_status=True)

expect(health.sync_detailed(client=anyone), 200, object)
expect(ready.sync_detailed(client=anyone), 200, object)

# The admin creates an event: a general-admission section and a seated one.
starts_at = datetime.datetime(2027, 5, 1, 20, 0, tzinfo=datetime.timezone.utc)
body = CreateEventBody(
    name="Generated client night",
    starts_at=starts_at,
    max_per_user=6,
    sections=[
        SectionBody(name="Floor", price_cents=5000, capacity=100),
        SectionBody(
            name="Balcony",
            price_cents=8000,
            seats=SeatsBody(rows=[RowJson(label="A", count=10), RowJson(label="B", count=10)]),
        ),
    ],
)
expect_error(create_event.sync_detailed(client=buyer, body=body), 403, ErrorCode.FORBIDDEN)
event = expect(create_event.sync_detailed(client=admin, body=body), 201, EventJson)
assert event.starts_at == starts_at, event.starts_at
assert isinstance(event.created_at, datetime.datetime), event.created_at
floor = section(event, SectionKind.GENERAL)
balcony = section(event, SectionKind.SEATED)
assert (floor.capacity, floor.available, balcony.capacity) == (100, 100, 20)
assert any(e.id == event.id for e in list_events.sync(client=anyone).data)

# The user holds 2 floor tickets and seats.
hold_body = HoldBody(items=[ItemJson(section_id=floor.id, qty=2)], seats=["A-1", "A-2"])
expect_error(
    place_hold.sync_detailed(event.id, client=stranger, body=hold_body), 401, ErrorCode.UNAUTHORIZED
)
hold = expect(
    place_hold.sync_detailed(event.id, client=buyer, body=hold_body, idempotency_key="gen-hold-1"),
    201,
    HoldJson,
)
assert hold.status == HoldStatus.HELD, hold.status
assert hold.user_id == user and hold.event_id == event.id
assert hold.total_cents == 2 * 5000 + 2 * 8000, hold.total_cents
assert hold.expires_at > hold.created_at, (hold.created_at, hold.expires_at)
retry = expect(
    place_hold.sync_detailed(event.id, client=buyer, body=hold_body, idempotency_key="gen-hold-1"),
    201,
    HoldJson,
)
assert retry.id == hold.id, "an idempotent retry answers the first hold"
expect_error(
    place_hold.sync_detailed(
        event.id,
        client=buyer,
        body=HoldBody(seats=["A-3"]),
        idempotency_key="gen-hold-1",
    ),
    422,
    ErrorCode.IDEMPOTENCY_KEY_REUSED,
)
expect_error(
    place_hold.sync_detailed(event.id, client=buyer, body=HoldBody(seats=["A-1"])),
    409,
    ErrorCode.SEAT_TAKEN,
)
assert get_hold.sync(hold.id, client=buyer).status == HoldStatus.HELD
counts = get_event.sync(event.id, client=anyone)
assert (section(counts, SectionKind.GENERAL).held, section(counts, SectionKind.SEATED).held) == (2, 2)

# Confirm into a booking; a second confirm is refused.
booking = expect(
    confirm_hold.sync_detailed(hold.id, client=buyer, body=ConfirmBody(payment_ref="pay-gen-1")),
    201,
    BookingJson,
)
assert booking.status == BookingStatus.CONFIRMED, booking.status
assert (booking.hold_id, booking.payment_ref, booking.seats) == (hold.id, "pay-gen-1", ["A-1", "A-2"])
expect_error(
    confirm_hold.sync_detailed(hold.id, client=buyer, body=ConfirmBody()),
    409,
    ErrorCode.HOLD_NOT_ACTIVE,
)
assert get_hold.sync(hold.id, client=buyer).status == HoldStatus.CONFIRMED
seats = {
    seat.id: seat.status
    for s in get_seats.sync(event.id, client=anyone).sections
    for row in s.rows
    for seat in row.seats
}
assert (seats["A-1"], seats["A-2"], seats["A-3"]) == (SeatStatus.SOLD, SeatStatus.SOLD, SeatStatus.FREE)

# Buy at once too, then list the user's bookings, newest first.
bought = expect(
    purchase.sync_detailed(event.id, client=buyer, body=PurchaseBody(seats=["B-5"])),
    201,
    BookingJson,
)
page = list_bookings.sync(client=buyer, event_id=event.id)
assert [b.id for b in page.data] == [bought.id, booking.id], [b.id for b in page.data]
assert all(b.user_id == user for b in page.data)

# Cancel: the tickets go back on sale; a second cancel is refused.
cancelled = expect(cancel_booking.sync_detailed(booking.id, client=buyer), 200, BookingJson)
assert cancelled.status == BookingStatus.CANCELLED, cancelled.status
assert isinstance(cancelled.cancelled_at, datetime.datetime), cancelled.cancelled_at
expect_error(
    cancel_booking.sync_detailed(booking.id, client=buyer), 409, ErrorCode.BOOKING_NOT_ACTIVE
)
assert get_booking.sync(booking.id, client=buyer).status == BookingStatus.CANCELLED

# A hold released at once answers `released`.
spare = place_hold.sync(event.id, client=buyer, body=HoldBody(items=[ItemJson(section_id=floor.id, qty=1)]))
released = expect(release_hold.sync_detailed(spare.id, client=buyer), 200, HoldJson)
assert released.status == HoldStatus.RELEASED, released.status
expect_error(release_hold.sync_detailed(spare.id, client=buyer), 409, ErrorCode.HOLD_NOT_ACTIVE)
expect_error(get_hold.sync_detailed("h-0-999999", client=buyer), 404, ErrorCode.NOT_FOUND)

final = get_event.sync(event.id, client=anyone)
floor, balcony = section(final, SectionKind.GENERAL), section(final, SectionKind.SEATED)
assert (floor.available, floor.held, floor.sold) == (100, 0, 0), floor
assert (balcony.available, balcony.held, balcony.sold) == (19, 0, 1), balcony
print("generated client: a whole sale passed")
