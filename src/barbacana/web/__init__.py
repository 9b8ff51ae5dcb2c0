"""The web layer: problem+json, limits, headers, request ids, ``secure()``."""

from ._health import ReadinessCheck
from ._models import StrictModel
from ._problem import PROBLEM_CONTENT_TYPE, ProblemResponse, problem_body
from ._secure import secure
from .errors import BodyTooLargeError, MalformedRequestError, NotFoundError

__all__ = [
    "PROBLEM_CONTENT_TYPE",
    "BodyTooLargeError",
    "MalformedRequestError",
    "NotFoundError",
    "ProblemResponse",
    "ReadinessCheck",
    "StrictModel",
    "problem_body",
    "secure",
]
