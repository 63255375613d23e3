"""Imports every domain's tables so ``Base.metadata`` is complete (migrations, tests)."""

from __future__ import annotations

from citybrain.core import models as core_models  # noqa: F401
from citybrain.data import models as data_models  # noqa: F401
from citybrain.events import models as events_models  # noqa: F401
from citybrain.geo import models as geo_models  # noqa: F401
from citybrain.geo import places as geo_places  # noqa: F401
from citybrain.indicators import models as indicators_models  # noqa: F401
from citybrain.iot import models as iot_models  # noqa: F401
from citybrain.org import models as org_models  # noqa: F401

from .db import Base

metadata = Base.metadata
