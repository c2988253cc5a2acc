"""The answers of `POST /v1/traces`, as the OTLP specification gives them, in the request's own encoding.

- 200: an `ExportTraceServiceResponse`; with `partial_success` (`rejected_spans`, `error_message`) when
  some spans were rejected. Clients must not retry a partial success.
- 4xx/5xx: a `google.rpc.Status` (`code`, `message`); 429 and 503 carry `Retry-After`.

A request whose encoding is not known (415) is answered in JSON.
"""

from __future__ import annotations

from google.protobuf import json_format
from google.rpc.status_pb2 import Status
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from starlette.responses import Response

from llmops_ingest.otlp.decode import Encoding

# HTTP status -> the gRPC code a google.rpc.Status carries (google/rpc/code.proto)
GRPC_CODES = {400: 3, 401: 16, 403: 7, 413: 3, 415: 3, 429: 8, 500: 13, 502: 14, 503: 14, 504: 14}


def exported(encoding: Encoding, *, rejected: int = 0, message: str = "") -> Response:
    """200: the spans are taken; `rejected` of them refused, as `message` says."""
    response = ExportTraceServiceResponse()
    if rejected or message:
        response.partial_success.rejected_spans = rejected
        response.partial_success.error_message = message
    return _render(response, encoding, 200)


def refused(status: int, message: str, encoding: Encoding | None, headers: dict[str, str] | None = None) -> Response:
    """An error: a `google.rpc.Status` with the gRPC code matching `status`."""
    body = Status(code=GRPC_CODES.get(status, 2), message=message)
    return _render(body, encoding or Encoding.JSON, status, headers)


def _render(message: Status | ExportTraceServiceResponse, encoding: Encoding, status: int,
            headers: dict[str, str] | None = None) -> Response:
    if encoding is Encoding.PROTOBUF:
        content = message.SerializeToString()
    else:
        content = json_format.MessageToJson(message, indent=None).encode()
    return Response(content, status_code=status, media_type=encoding.value, headers=headers)
