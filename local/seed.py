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
    seed_catalog()
    seed_stores()


def seed_people() -> None:
    from chalicelib.members import service as members
    from chalicelib.members.schemas import StaffGrant

    members.grant_role(StaffGrant(openid=ADMIN_OPENID, role="admin", name="HQ 运营"), granted_by=SEEDER)


# (skuId, title, price, memberPrice, category, active), money in fen.
DEMO_SKUS = [
    ("phone-s3-256-black", "思语 S3 5G 手机 12GB+256GB 曜石黑", 399900, 389900, "phone", True),
    ("phone-s3-512-white", "思语 S3 5G 手机 12GB+512GB 月光白", 449900, 439900, "phone", True),
    ("phone-s2-128-blue", "思语 S2 5G 手机 8GB+128GB 远峰蓝（已停售）", 229900, 219900, "phone", False),
    ("earbuds-air2-white", "思语 Air 2 主动降噪真无线耳机 白色", 69900, 64900, "audio", True),
    ("charger-gan-65w", "65W 氮化镓三口快充充电器", 14900, 12900, "charger", True),
    ("powerbank-magsafe-10k", "10000mAh 磁吸无线充电宝", 19900, 17900, "charger", True),
    ("film-s3-tempered-2p", "S3 高清钢化膜 防指纹（2片装）", 3900, 2900, "screen-protector", True),
    ("case-s3-magnetic-clear", "S3 磁吸透明保护壳", 9900, 7900, "case", True),
    ("cable-c2c-1m", "USB-C 编织快充数据线 1 米", 4900, 3900, "accessory", True),
]

# First counts per location; the warehouse holds the most.
DEMO_STOCK = {
    "sh-nanjingxilu": {"phone-s3-256-black": 12, "phone-s3-512-white": 6, "earbuds-air2-white": 20,
                       "charger-gan-65w": 30, "powerbank-magsafe-10k": 15, "film-s3-tempered-2p": 60,
                       "case-s3-magnetic-clear": 40, "cable-c2c-1m": 50},
    "sh-lujiazui": {"phone-s3-256-black": 8, "phone-s3-512-white": 4, "earbuds-air2-white": 12,
                    "charger-gan-65w": 25, "powerbank-magsafe-10k": 10, "film-s3-tempered-2p": 45,
                    "case-s3-magnetic-clear": 30},
    "sh-xujiahui": {"phone-s3-256-black": 5, "earbuds-air2-white": 8, "charger-gan-65w": 18,
                    "film-s3-tempered-2p": 35, "case-s3-magnetic-clear": 20, "cable-c2c-1m": 25},
    "warehouse": {"phone-s3-256-black": 200, "phone-s3-512-white": 120, "phone-s2-128-blue": 3,
                  "earbuds-air2-white": 300, "charger-gan-65w": 500, "powerbank-magsafe-10k": 250,
                  "film-s3-tempered-2p": 1000, "case-s3-magnetic-clear": 600, "cable-c2c-1m": 800},
}


def seed_catalog() -> None:
    """SKUs created where missing and first counts where a location has none: reseeding keeps live stock."""
    from chalicelib.catalog import service as catalog
    from chalicelib.catalog.schemas import SkuPut

    existing = catalog.find_skus(sku_id for sku_id, *_ in DEMO_SKUS)
    for sku_id, title, price, member_price, category, active in DEMO_SKUS:
        if sku_id not in existing:
            body = SkuPut(
                title=title,
                price=price,
                member_price=member_price,
                category=category,
                image_url=f"https://img.siyu.example/skus/{sku_id}.png",
                active=active,
            )
            catalog.put_sku(sku_id, body)
    for store_id, levels in DEMO_STOCK.items():
        for sku_id, on_hand in levels.items():
            catalog.stock_first_count(store_id, sku_id, on_hand)


def _hours(weekdays: str, weekends: str) -> dict[str, list[dict[str, str]]]:
    def interval(text: str) -> list[dict[str, str]]:
        opens, closes = text.split("-")
        return [{"open": opens, "close": closes}]

    return {
        **{day: interval(weekdays) for day in ("mon", "tue", "wed", "thu")},
        **{day: interval(weekends) for day in ("fri", "sat", "sun")},
    }


def _services(repair_capacity: int) -> list[dict[str, object]]:
    return [
        {"serviceId": "screen-film", "name": "屏幕贴膜", "durationMinutes": 20, "capacity": 2},
        {"serviceId": "cleaning", "name": "深度清洁", "durationMinutes": 30, "capacity": 2},
        {"serviceId": "device-check", "name": "设备检测", "durationMinutes": 30, "capacity": 2},
        {"serviceId": "data-migration", "name": "数据迁移", "durationMinutes": 45, "capacity": 1},
        {"serviceId": "repair", "name": "维修服务", "durationMinutes": 60, "capacity": repair_capacity},
    ]


# Coordinates as Chinese map apps give them (GCJ-02), which is what the mini-program sends.
DEMO_STORES = {
    "sh-nanjingxilu": {
        "name": "思语服务中心 南京西路旗舰店",
        "address": "上海市静安区南京西路1266号恒隆广场5楼",
        "phone": "021-62880001",
        "lat": 31.2268,
        "lng": 121.4550,
        "openHours": _hours("10:00-22:00", "10:00-22:30"),
        "services": _services(repair_capacity=2),
        "deliveryRadiusKm": 6,
    },
    "sh-lujiazui": {
        "name": "思语服务中心 陆家嘴店",
        "address": "上海市浦东新区世纪大道8号上海国金中心商场LG1层",
        "phone": "021-68880002",
        "lat": 31.2345,
        "lng": 121.5040,
        "openHours": _hours("10:00-22:00", "10:00-22:00"),
        "services": _services(repair_capacity=1),
        "deliveryRadiusKm": 5,
    },
    "sh-xujiahui": {
        "name": "思语服务中心 徐家汇店",
        "address": "上海市徐汇区虹桥路1号港汇恒隆广场4楼",
        "phone": "021-64080003",
        "lat": 31.1932,
        "lng": 121.4395,
        "openHours": _hours("10:00-21:30", "10:00-22:00"),
        "services": _services(repair_capacity=1),
        "deliveryRadiusKm": 5,
    },
}
STAFF_NAMES = {"sh-nanjingxilu": "王店长", "sh-lujiazui": "李店长", "sh-xujiahui": "陈店长"}


def seed_stores() -> None:
    """The Shanghai stores, a staff member each and the guide; a store already as described is left alone."""
    from chalicelib.errors import NotFoundError
    from chalicelib.members import service as members
    from chalicelib.members.schemas import StaffGrant
    from chalicelib.stores import service as stores
    from chalicelib.stores.schemas import StoreSpec

    for store_id, body in DEMO_STORES.items():
        spec = StoreSpec.model_validate(body)
        try:
            current = stores.store_view(stores.get_store(store_id, fresh=True))
        except NotFoundError:
            current = None
        wanted = stores.store_view(stores.from_spec(store_id, spec))
        if current != wanted:
            stores.put_store(store_id, spec, updated_by=SEEDER)
        members.grant_role(
            StaffGrant(openid=f"dev-staff-{store_id}", role="staff", store_id=store_id, name=STAFF_NAMES[store_id]),
            granted_by=SEEDER,
        )
    members.grant_role(
        StaffGrant(openid=GUIDE_ID, role="guide", guide_id=GUIDE_ID, store_id="sh-nanjingxilu", name="导购 小思"),
        granted_by=SEEDER,
    )
