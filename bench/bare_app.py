"""The bare FastAPI endpoints bench/api_load.py measures next to the service (same uvicorn, same flags).

`GET /bare` answers from memory: the reference for every throughput share. `POST /bare-write` (only when
BARE_DATABASE_URL is set) stores the request body in one row and commits, through a pool sized like the API's:
the least a submission that must be durable before its 202 can cost, so the service's submissions can be
compared with what one durable write costs on the same machine.
"""

import os

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from sqlalchemy import create_engine, text

app = FastAPI()


@app.get("/bare")
async def bare() -> dict[str, str]:
    return {"status": "ok"}


if os.environ.get("BARE_DATABASE_URL"):
    # Sized as the API's pool (app/core/db.py::api_engine: one connection per admitted request, default 20).
    engine = create_engine(os.environ["BARE_DATABASE_URL"], pool_size=20, max_overflow=10)
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE IF NOT EXISTS bare_writes "
                                "(id bigserial PRIMARY KEY, body json NOT NULL)"))

    def _store(body: str) -> None:
        with engine.begin() as connection:  # one INSERT and its COMMIT (a WAL flush, as the ledger's)
            connection.execute(text("INSERT INTO bare_writes (body) VALUES (CAST(:body AS json))"), {"body": body})

    @app.post("/bare-write", status_code=202)
    async def bare_write(request: Request) -> dict[str, str]:
        await run_in_threadpool(_store, (await request.body()).decode())
        return {"status": "ok"}
