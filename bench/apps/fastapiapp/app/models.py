"""The shop's tables, as SQLAlchemy ORM classes."""

from __future__ import annotations

from sqlalchemy import ForeignKey, String, select
from sqlalchemy.orm import Mapped, Session, mapped_column, relationship

from app.db import Base, engine


class User(Base):
    __tablename__ = "fa_users"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(200), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    is_active: Mapped[bool] = mapped_column(default=True)
    orders: Mapped[list[Order]] = relationship(back_populates="user")


class Item(Base):
    __tablename__ = "fa_items"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(String(2000), default="")
    price_cents: Mapped[int]
    stock: Mapped[int] = mapped_column(default=0)


class Order(Base):
    __tablename__ = "fa_orders"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("fa_users.id"))
    item_id: Mapped[int] = mapped_column(ForeignKey("fa_items.id"))
    quantity: Mapped[int] = mapped_column(default=1)
    status: Mapped[str] = mapped_column(String(20), default="open")
    user: Mapped[User] = relationship(back_populates="orders")
    item: Mapped[Item] = relationship()


def init_schema() -> None:
    """Create the tables and a small catalogue once (every start runs it; it is idempotent)."""
    Base.metadata.create_all(engine)
    with Session(engine) as db:
        if db.scalar(select(Item.id).limit(1)) is not None:
            return
        db.add_all(
            Item(
                id=i,
                name=f"item number {i} with a fairly long descriptive name",
                description="a thing the shop sells",
                price_cents=199 * i,
                stock=i % 7,
            )
            for i in range(1, 41)
        )
        db.add_all(User(id=i, email=f"user{i}@example.com", name=f"User {i}") for i in range(1, 11))
        db.add_all(
            Order(id=i, user_id=1 + i % 10, item_id=1 + i % 40, quantity=1 + i % 3) for i in range(1, 31)
        )
        db.commit()
