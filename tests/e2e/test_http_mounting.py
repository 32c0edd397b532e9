"""The adapter inside a user's own FastAPI app, and the error translator as that app's exception
handler, served by uvicorn through `run_http` and called over real HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import grpc
from fastapi import FastAPI

from lockservice.http import create_app, rpc_error_handler
from lockservice.v1 import resource_pb2, resource_pb2_grpc
from tests.conftest import ServerProcess
from tests.http.support import assert_problem, serving


def user_app(target: str) -> FastAPI:
    """What the README shows: the adapter mounted, and lockservice's 409s in the user's routes."""
    lockservice = create_app(target=target)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with lockservice.router.lifespan_context(lockservice):  # closes its channel at the end
            yield

    app = FastAPI(lifespan=lifespan)
    app.mount("/lockservice", lockservice)
    app.add_exception_handler(grpc.RpcError, rpc_error_handler())

    @app.post("/orders/{order_id}")
    async def create_order(order_id: str) -> dict[str, int]:
        async with grpc.aio.insecure_channel(target) as channel:
            stub = resource_pb2_grpc.ResourceServiceStub(channel)
            created = await stub.CreateResource(
                resource_pb2.CreateResourceRequest(key=f"orders/{order_id}", value=b"{}"), timeout=10
            )
        return {"version": created.version}

    @app.get("/orders/{order_id}")
    def read_order(order_id: str) -> dict[str, int]:  # a sync route with a sync stub
        with grpc.insecure_channel(target) as channel:
            stub = resource_pb2_grpc.ResourceServiceStub(channel)
            found = stub.GetResource(resource_pb2.GetResourceRequest(key=f"orders/{order_id}"), timeout=10)
        return {"version": found.version}

    return app


def test_mounted_under_a_prefix_in_a_fastapi_app(server: ServerProcess, prefix: str) -> None:
    with serving(user_app(server.address)) as client:
        path = f"/lockservice/v1/resources/{prefix}/mounted"
        created = client.put(path, content=b"v", headers={"If-None-Match": "*"})
        assert created.status_code == 201
        assert created.headers["location"] == path
        stale = client.put(path, content=b"w", headers={"If-Match": '"0.0"'})
        assert_problem(stale, 409, "VERSION_MISMATCH", code="ABORTED", instance=path)
        assert stale.headers["etag"] == created.headers["etag"]

        document = client.get("/lockservice/v1/openapi.json").json()
        assert document["servers"] == [{"url": "/lockservice"}]
        unknown = client.get("/lockservice/v9/nothing")
        assert_problem(unknown, 404, "ROUTE_NOT_FOUND", code="NOT_FOUND", instance="/lockservice/v9/nothing")
        assert client.get("/lockservice/healthz").json() == {"status": "ok"}


def test_the_exception_handler_gives_a_users_routes_the_same_problems(
    server: ServerProcess, prefix: str
) -> None:
    order = f"{prefix}-1"
    with serving(user_app(server.address)) as client:
        assert client.post(f"/orders/{order}").json() == {"version": 1}
        again = client.post(f"/orders/{order}")
        problem = assert_problem(
            again, 409, "RESOURCE_EXISTS", code="ALREADY_EXISTS", instance=f"/orders/{order}"
        )
        assert problem["conflict"]["current_version"] == 1
        assert again.headers["etag"] == problem["conflict"]["current_etag"]

        assert client.get(f"/orders/{order}").json() == {"version": 1}
        missing = client.get(f"/orders/{prefix}-none")
        assert_problem(
            missing, 404, "RESOURCE_NOT_FOUND", code="NOT_FOUND", instance=f"/orders/{prefix}-none"
        )
