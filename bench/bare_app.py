"""The bare FastAPI endpoint bench/api_load.py measures next to the service (same uvicorn, same flags)."""

from fastapi import FastAPI

app = FastAPI()


@app.get("/bare")
async def bare() -> dict[str, str]:
    return {"status": "ok"}
