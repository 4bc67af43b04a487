"""The orders API."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, status
from sqlalchemy import func, select

from app import models, schemas
from app.dependencies import PageDep, SessionDep

router = APIRouter(prefix="/api/orders", tags=["orders"])


def _get(db: SessionDep, order_id: int) -> models.Order:
    found = db.get(models.Order, order_id)
    if found is None:
        raise HTTPException(status_code=404, detail="Order not found")
    return found


@router.get("/", response_model=list[schemas.Order])
def list_orders(db: SessionDep, page: PageDep) -> list[models.Order]:
    query = select(models.Order).order_by(models.Order.id).offset(page.offset).limit(page.limit)
    return list(db.scalars(query))


@router.get("/open", response_model=list[schemas.Order])
def open_orders(db: SessionDep, page: PageDep) -> list[models.Order]:
    query = select(models.Order).where(models.Order.status == "open").offset(page.offset).limit(page.limit)
    return list(db.scalars(query))


@router.get("/count")
def count_orders(db: SessionDep) -> dict[str, int]:
    return {"orders": db.scalar(select(func.count()).select_from(models.Order)) or 0}


@router.get("/{order_id}", response_model=schemas.Order)
def read_order(order_id: int, db: SessionDep) -> models.Order:
    return _get(db, order_id)


@router.post("/", response_model=schemas.Order, status_code=status.HTTP_201_CREATED)
def create_order(body: schemas.OrderCreate, db: SessionDep) -> models.Order:
    if db.get(models.User, body.user_id) is None or db.get(models.Item, body.item_id) is None:
        raise HTTPException(status_code=422, detail="Unknown user or item")
    order = models.Order(**body.model_dump())
    db.add(order)
    db.commit()
    return order


@router.post("/{order_id}/ship", response_model=schemas.Order)
def ship(order_id: int, db: SessionDep) -> models.Order:
    order = _get(db, order_id)
    if order.status != "open":
        raise HTTPException(status_code=409, detail=f"Order is {order.status}")
    order.status = "shipped"
    db.commit()
    return order


@router.post("/{order_id}/cancel", response_model=schemas.Order)
def cancel(order_id: int, db: SessionDep) -> models.Order:
    order = _get(db, order_id)
    order.status = "cancelled"
    db.commit()
    return order


@router.delete("/{order_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_order(order_id: int, db: SessionDep) -> None:
    db.delete(_get(db, order_id))
    db.commit()
