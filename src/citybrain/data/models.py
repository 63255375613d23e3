"""Base databases seeded by the foundation: population (人口) and legal entities (法人).

The data resource pool (catalog, datasets, sharing, masking) builds on these tables later.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Float, String
from sqlalchemy.orm import Mapped, mapped_column

from citybrain.core.db import Base


class Resident(Base):
    __tablename__ = "resident"

    id: Mapped[int] = mapped_column(primary_key=True)
    id_number: Mapped[str] = mapped_column(String(18), unique=True)
    name: Mapped[str] = mapped_column(String(50))
    sex: Mapped[str] = mapped_column(String(1))
    birth_date: Mapped[date]
    mobile: Mapped[str] = mapped_column(String(11))
    township_code: Mapped[str] = mapped_column(String(9), index=True)
    address: Mapped[str] = mapped_column(String(200))
    household_id: Mapped[str] = mapped_column(String(32), index=True)
    synthetic: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime]


class Enterprise(Base):
    __tablename__ = "enterprise"

    id: Mapped[int] = mapped_column(primary_key=True)
    credit_code: Mapped[str] = mapped_column(String(18), unique=True)
    name: Mapped[str] = mapped_column(String(120))
    legal_representative: Mapped[str] = mapped_column(String(50))
    industry: Mapped[str] = mapped_column(String(1))
    industry_name: Mapped[str] = mapped_column(String(50))
    registered_on: Mapped[date]
    registered_capital_wan: Mapped[float] = mapped_column(Float)
    township_code: Mapped[str] = mapped_column(String(9), index=True)
    address: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(10))
    synthetic: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime]
