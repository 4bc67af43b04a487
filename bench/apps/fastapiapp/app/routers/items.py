"""The items API."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Query, status
from sqlalchemy import func, select

from app import models, schemas
from app.dependencies import PageDep, SessionDep

router = APIRouter(prefix="/api/items", tags=["items"])


def _get(db: SessionDep, item_id: int) -> models.Item:
    found = db.get(models.Item, item_id)
    if found is None:
        raise HTTPException(status_code=404, detail="Item not found")
    return found


@router.get("/", response_model=schemas.ItemPage)
def list_items(db: SessionDep, page: PageDep) -> schemas.ItemPage:
    rows = db.scalars(select(models.Item).order_by(models.Item.id).offset(page.offset).limit(page.limit))
    total = db.scalar(select(func.count()).select_from(models.Item)) or 0
    return schemas.ItemPage(
        total=total,
        offset=page.offset,
        limit=page.limit,
        items=[schemas.Item.model_validate(r) for r in rows],
    )


@router.get("/search", response_model=list[schemas.Item])
def search_items(db: SessionDep, q: str = Query(min_length=1, max_length=50)) -> list[models.Item]:
    return list(db.scalars(select(models.Item).where(models.Item.name.contains(q)).limit(20)))


@router.get("/in-stock", response_model=list[schemas.Item])
def in_stock(db: SessionDep, page: PageDep) -> list[models.Item]:
    query = select(models.Item).where(models.Item.stock > 0).offset(page.offset).limit(page.limit)
    return list(db.scalars(query))


@router.get("/cheapest", response_model=schemas.Item)
def cheapest(db: SessionDep) -> models.Item:
    found = db.scalars(select(models.Item).order_by(models.Item.price_cents).limit(1)).first()
    if found is None:
        raise HTTPException(status_code=404, detail="No items")
    return found


@router.get("/{item_id}", response_model=schemas.Item)
def read_item(item_id: int, db: SessionDep) -> models.Item:
    return _get(db, item_id)


@router.post("/", response_model=schemas.Item, status_code=status.HTTP_201_CREATED)
def create_item(body: schemas.ItemCreate, db: SessionDep) -> models.Item:
    item = models.Item(**body.model_dump())
    db.add(item)
    db.commit()
    return item


@router.put("/{item_id}", response_model=schemas.Item)
def replace_item(item_id: int, body: schemas.ItemCreate, db: SessionDep) -> models.Item:
    item = _get(db, item_id)
    for key, value in body.model_dump().items():
        setattr(item, key, value)
    db.commit()
    return item


@router.patch("/{item_id}", response_model=schemas.Item)
def update_item(item_id: int, body: schemas.ItemUpdate, db: SessionDep) -> models.Item:
    item = _get(db, item_id)
    for key, value in body.model_dump(exclude_unset=True).items():
        setattr(item, key, value)
    db.commit()
    return item


@router.post("/{item_id}/restock", response_model=schemas.Item)
def restock(item_id: int, db: SessionDep, amount: int = Query(default=1, ge=1, le=1000)) -> models.Item:
    item = _get(db, item_id)
    item.stock += amount
    db.commit()
    return item


@router.delete("/{item_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_item(item_id: int, db: SessionDep) -> None:
    db.delete(_get(db, item_id))
    db.commit()
