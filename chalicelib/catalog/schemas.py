"""Request bodies and answers of the catalog and inventory routes (money in integer fen)."""

from __future__ import annotations

from pydantic import ConfigDict, Field, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError

from chalicelib.validation import Page, RequestModel, ResponseModel, Timestamp

__all__ = [
    "PointsPricePut",
    "SkuPut",
    "InventoryPut",
    "StockImport",
    "StockImportAnswer",
    "PointsPrice",
    "Sku",
    "SkuPage",
    "StockLevel",
    "MAX_PRICE",
    "MAX_POINTS",
    "MAX_ON_HAND",
    "MAX_LAUNCH_SHARDS",
]

MAX_PRICE = 100_000_000  # ¥1,000,000.00
MAX_POINTS = 100_000_000
MAX_ON_HAND = 1_000_000
MAX_LAUNCH_SHARDS = 32  # chalicelib.catalog.models.MAX_SHARDS


class PointsPricePut(RequestModel):
    """积分加钱购: one unit for `points` points plus `cash` fen."""

    points: int = Field(ge=1, le=MAX_POINTS)
    cash: int = Field(ge=0, le=MAX_PRICE, description="fen")


class SkuPut(RequestModel):
    """A whole SKU: PUT replaces it, so a field left out is cleared (or defaulted)."""

    model_config = ConfigDict(str_strip_whitespace=True)

    title: str = Field(min_length=1, max_length=60)
    price: int = Field(ge=1, le=MAX_PRICE)
    member_price: int | None = Field(default=None, ge=1, le=MAX_PRICE)
    category: str = Field(min_length=1, max_length=32)
    image_url: str | None = Field(default=None, max_length=512, pattern=r"^https://\S+$")
    active: bool = True
    launch_shards: int | None = Field(
        default=None,
        ge=1,
        le=MAX_LAUNCH_SHARDS,
        description="a launch SKU: each location's stock is split over this many shards; null: an ordinary SKU",
    )
    points_price: PointsPricePut | None = Field(
        default=None, description="also sold for points plus cash per unit; null: for money only"
    )

    @field_validator("member_price")
    @classmethod
    def _not_above_price(cls, value: int | None, info: ValidationInfo) -> int | None:
        price = info.data.get("price")
        if value is not None and price is not None and value > price:
            raise PydanticCustomError("above_price", "must not be above price")
        return value


class InventoryPut(RequestModel):
    on_hand: int = Field(ge=0, le=MAX_ON_HAND)


class StockImport(RequestModel):
    """A whole store's count, as a spreadsheet exports it: the header `skuId,onHand`, then one row per SKU."""

    csv: str = Field(min_length=1, max_length=512 * 1024, examples=["skuId,onHand\r\nsy-air2,12\r\n"])


# --- Answers -------------------------------------------------------------------------------


class PointsPrice(ResponseModel):
    """积分加钱购: one unit for `points` points plus `cash` fen instead of its price."""

    points: int
    cash: int = Field(description="fen")


class Sku(ResponseModel):
    sku_id: str
    title: str
    price: int = Field(description="fen")
    member_price: int | None = Field(description="fen")
    category: str
    image_url: str | None
    active: bool
    launch_shards: int | None = Field(description="shards per location of a launch SKU; null: an ordinary SKU")
    points_price: PointsPrice | None = Field(description="points plus cash per unit; null: for money only")
    updated_at: Timestamp


class SkuPage(Page[Sku]):
    """`GET /skus`: active SKUs by skuId."""


class RefusedRow(ResponseModel):
    line: int
    sku_id: str
    code: str
    message: str


class StockImportAnswer(ResponseModel):
    store_id: str
    rows: int
    updated: int
    refused: list[RefusedRow] = Field(description="rows whose count is below what open orders reserved")


class StockLevel(ResponseModel):
    """A location's stock of a SKU: `available` is `onHand - reserved`."""

    store_id: str
    sku_id: str
    on_hand: int
    reserved: int
    available: int
