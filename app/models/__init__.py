"""The ledger's SQLAlchemy models. Import this package to register every table on `Base.metadata`."""

from app.models.base import Base
from app.models.tenant import ApiKey, Tenant

__all__ = ["ApiKey", "Base", "Tenant"]
