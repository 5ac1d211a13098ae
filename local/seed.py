"""The demo brand: HQ admin, stores with services, stock and staff, a guide, SKUs.

Everything is written through the domains' service functions, as an admin would.
Seeding twice changes nothing.
"""

from __future__ import annotations

__all__ = ["seed_demo_brand", "ADMIN_OPENID", "GUIDE_ID"]

ADMIN_OPENID = "dev-admin"
GUIDE_ID = "dev-guide"
SEEDER = "seed"


def seed_demo_brand() -> None:
    seed_people()


def seed_people() -> None:
    from chalicelib.members import service as members
    from chalicelib.members.schemas import StaffGrant

    members.grant_role(StaffGrant(openid=ADMIN_OPENID, role="admin", name="HQ 运营"), granted_by=SEEDER)
