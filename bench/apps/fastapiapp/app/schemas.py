"""What the API reads and writes: pydantic models, apart from the tables."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class ItemBase(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    description: str = ""
    price_cents: int = Field(ge=0)
    stock: int = Field(default=0, ge=0)


class ItemCreate(ItemBase):
    pass


class ItemUpdate(BaseModel):
    name: str | None = Field(default=None, min_length=1, max_length=200)
    description: str | None = None
    price_cents: int | None = Field(default=None, ge=0)
    stock: int | None = Field(default=None, ge=0)


class Item(ItemBase):
    model_config = ConfigDict(from_attributes=True)

    id: int


class UserCreate(BaseModel):
    email: str = Field(pattern=r"^[^@\s]+@[^@\s]+$", max_length=200)
    name: str = Field(min_length=1, max_length=200)


class User(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    email: str
    name: str
    is_active: bool


class OrderCreate(BaseModel):
    user_id: int
    item_id: int
    quantity: int = Field(default=1, ge=1, le=100)


class Order(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    user_id: int
    item_id: int
    quantity: int
    status: str


class Page(BaseModel):
    total: int
    offset: int
    limit: int


class ItemPage(Page):
    items: list[Item]


class Stats(BaseModel):
    items: int
    users: int
    orders: int
    stock_value_cents: int
