"""What a browser may ask of locations. Text fields arrive trimmed."""

from __future__ import annotations

from typing import Annotated, Final, Literal, get_args

import msgspec

Category = Literal["Town", "City", "County/Region", "Country", "Continent"]
CATEGORIES: Final[tuple[str, ...]] = get_args(Category)

Name = Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
Description = Annotated[str, msgspec.Meta(max_length=1000)]


class CreateLocation(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Create a location."""

    name: Name
    category: Category
    description: Description = ""
