"""The users API."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, status
from sqlalchemy import select

from app import models, schemas
from app.dependencies import PageDep, SessionDep

router = APIRouter(prefix="/api/users", tags=["users"])


def _get(db: SessionDep, user_id: int) -> models.User:
    found = db.get(models.User, user_id)
    if found is None:
        raise HTTPException(status_code=404, detail="User not found")
    return found


@router.get("/", response_model=list[schemas.User])
def list_users(db: SessionDep, page: PageDep) -> list[models.User]:
    return list(
        db.scalars(select(models.User).order_by(models.User.id).offset(page.offset).limit(page.limit))
    )


@router.get("/me", response_model=schemas.User)
def read_me(db: SessionDep) -> models.User:
    return _get(db, 1)


@router.get("/by-email/{email}", response_model=schemas.User)
def by_email(email: str, db: SessionDep) -> models.User:
    found = db.scalars(select(models.User).where(models.User.email == email)).first()
    if found is None:
        raise HTTPException(status_code=404, detail="User not found")
    return found


@router.get("/{user_id}", response_model=schemas.User)
def read_user(user_id: int, db: SessionDep) -> models.User:
    return _get(db, user_id)


@router.get("/{user_id}/orders", response_model=list[schemas.Order])
def user_orders(user_id: int, db: SessionDep) -> list[models.Order]:
    return list(_get(db, user_id).orders)


@router.post("/", response_model=schemas.User, status_code=status.HTTP_201_CREATED)
def create_user(body: schemas.UserCreate, db: SessionDep) -> models.User:
    if db.scalars(select(models.User).where(models.User.email == body.email)).first():
        raise HTTPException(status_code=409, detail="Email already registered")
    user = models.User(email=body.email, name=body.name)
    db.add(user)
    db.commit()
    return user


@router.post("/{user_id}/deactivate", response_model=schemas.User)
def deactivate(user_id: int, db: SessionDep) -> models.User:
    user = _get(db, user_id)
    user.is_active = False
    db.commit()
    return user


@router.delete("/{user_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_user(user_id: int, db: SessionDep) -> None:
    db.delete(_get(db, user_id))
    db.commit()
