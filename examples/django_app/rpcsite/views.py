"""A view that calls a remote service: GET /mul?a=6&b=7 -> {"result": 42}."""

from django.conf import settings
from django.http import HttpRequest, JsonResponse

import amqprpc


def mul(request: HttpRequest) -> JsonResponse:
    """Multiply a and b on the remote `Arith` service."""
    try:
        a, b = int(request.GET["a"]), int(request.GET["b"])
    except (KeyError, ValueError):
        return JsonResponse({"error": "give integers a and b"}, status=400)
    try:
        result = settings.RPC.client("Arith").mul({"A": a, "B": b})
    except amqprpc.RemoteError as err:  # the service answered with an error
        return JsonResponse({"error": str(err)}, status=502)
    except amqprpc.RPCError as err:  # timeout, no such queue, connection lost
        return JsonResponse({"error": type(err).__name__}, status=503)
    return JsonResponse({"result": result})
