"""`DELETE /members/me`: a member's personal data erased everywhere, their ledgers kept anonymous.

The orders and bookings forget the member first (refused, with nothing
changed, while an order is still on its way), then the member record and its
identities go in one write, from which moment every token of theirs is
refused. The orders are looked at once more afterwards, for one placed in
between. Points, coupons and commissions stay under the bare member id, which
names nobody once the member record holds no identity.
"""

from __future__ import annotations

from chalicelib import observability
from chalicelib.appointments import service as appointments
from chalicelib.members import service as members
from chalicelib.orders import lifecycle as orders

__all__ = ["delete_member"]


def delete_member(member_id: str) -> None:
    members.get_member(member_id)  # a member already gone is refused before anything is touched
    orders.erase_member_orders(member_id)
    appointments.erase_member_appointments(member_id)
    members.delete_member(member_id)
    erased = orders.erase_member_orders(member_id)
    observability.info("member erased", member_id=member_id, orders=erased)
