"""RFC 9457 problem+json responses."""

from __future__ import annotations

from collections.abc import Mapping

from starlette.responses import Response

from contracts.commands import encoder
from contracts.notices import FieldError, Problem

PROBLEM_JSON = "application/problem+json"
UNAVAILABLE = Problem(
    type="/problems/service-unavailable",
    title="Service unavailable",
    status=503,
    detail="The message store is unreachable. Retry shortly.",
)


class HTTPProblem(Exception):
    """Raise from a handler to answer with a problem; see `problem_response`."""

    def __init__(
        self,
        status: int,
        title: str,
        detail: str,
        *,
        slug: str | None = None,
        errors: list[FieldError] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.problem = Problem(
            type=f"/problems/{slug or title.lower().replace(' ', '-')}",
            title=title,
            status=status,
            detail=detail,
            errors=errors,
        )
        self.headers = dict(headers or {})


def problem_response(problem: Problem, headers: Mapping[str, str] | None = None) -> Response:
    return Response(
        encoder.encode(problem),
        status_code=problem.status,
        media_type=PROBLEM_JSON,
        headers=headers,
    )


def not_found(what: str) -> HTTPProblem:
    return HTTPProblem(404, "Not found", f"{what} does not exist.")


def invalid_query(name: str, requirement: str) -> HTTPProblem:
    """422 for a query parameter that breaks its rule, e.g. ("limit", "an integer from 1 to 9")."""
    return HTTPProblem(
        422,
        "Invalid parameter",
        f"{name} must be {requirement}",
        slug="validation",
        errors=[FieldError(loc=f"query.{name}", msg=f"must be {requirement}")],
    )
