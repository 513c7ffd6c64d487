"""The NGSI-LD error types (GS CIM 009 clause 5.5.2), free of any web framework.

Every layer raises these; ``api/problems.py`` renders them as ProblemDetails, once.

    NgsiLdError
     ├── InvalidRequest          400  malformed request (bad JSON, bad parameter)
     ├── BadRequestData          400  well-formed but invalid NGSI-LD content
     ├── ResourceNotFound        404
     ├── NonexistentTenant       404
     ├── AlreadyExists           409
     ├── PayloadTooLarge         413
     ├── UnsupportedMediaType    415
     ├── NotAcceptable           406
     ├── OperationNotSupported   422
     ├── TooComplexQuery         403
     ├── TooManyResults          403
     ├── NoMultiTenantSupport    501
     ├── LdContextNotAvailable   503
     └── InternalError           500
"""

from __future__ import annotations

ERRORS_BASE = "https://uri.etsi.org/ngsi-ld/errors/"


class NgsiLdError(Exception):
    """A failure the caller can be told about with an NGSI-LD problem type."""

    status = 500
    problem = "InternalError"
    title = "Internal error"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail

    @property
    def type_uri(self) -> str:
        return ERRORS_BASE + self.problem


class InvalidRequest(NgsiLdError):
    status = 400
    problem = "InvalidRequest"
    title = "Invalid request"


class BadRequestData(NgsiLdError):
    status = 400
    problem = "BadRequestData"
    title = "Bad request data"


class ResourceNotFound(NgsiLdError):
    status = 404
    problem = "ResourceNotFound"
    title = "Resource not found"


class NonexistentTenant(NgsiLdError):
    status = 404
    problem = "NonexistentTenant"
    title = "Nonexistent tenant"


class AlreadyExists(NgsiLdError):
    status = 409
    problem = "AlreadyExists"
    title = "Already exists"


class PayloadTooLarge(NgsiLdError):
    # No dedicated NGSI-LD type exists for 413; InvalidRequest is the closest.
    status = 413
    problem = "InvalidRequest"
    title = "Payload too large"


class UnsupportedMediaType(NgsiLdError):
    status = 415
    problem = "InvalidRequest"
    title = "Unsupported media type"


class NotAcceptable(NgsiLdError):
    status = 406
    problem = "InvalidRequest"
    title = "Not acceptable"


class OperationNotSupported(NgsiLdError):
    status = 422
    problem = "OperationNotSupported"
    title = "Operation not supported"


class TooComplexQuery(NgsiLdError):
    status = 403
    problem = "TooComplexQuery"
    title = "Too complex query"


class TooManyResults(NgsiLdError):
    status = 403
    problem = "TooManyResults"
    title = "Too many results"


class NoMultiTenantSupport(NgsiLdError):
    status = 501
    problem = "NoMultiTenantSupport"
    title = "No multi-tenant support"


class LdContextNotAvailable(NgsiLdError):
    status = 503
    problem = "LdContextNotAvailable"
    title = "@context not available"


class Unauthorized(NgsiLdError):
    """A device (or later a user) that did not prove who it is. NGSI-LD names no problem type
    for it, so the type is the platform's own."""

    status = 401
    problem = "Unauthorized"
    title = "Unauthorized"

    @property
    def type_uri(self) -> str:
        return "urn:stadsnav:errors:Unauthorized"


class InternalError(NgsiLdError):
    pass
