"""A FastAPI app for `webserver asgi:app main:app` (run from this directory, in a virtualenv with
requirements.txt installed)."""

import asyncio
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI
from fastapi.responses import StreamingResponse
from pydantic import BaseModel


@asynccontextmanager
async def lifespan(app):
    # Whatever is yielded is every request's `request.state`.
    yield {"greeting": "Hello"}


app = FastAPI(lifespan=lifespan)


class Item(BaseModel):
    name: str
    price: float


def pagination(limit: int = 10):
    return {"limit": limit}


@app.get("/")
async def root():
    return {"message": "Hello, world!"}


@app.get("/items/{item_id}")
async def read_item(item_id: int, q: str | None = None, page=Depends(pagination)):
    return {"item_id": item_id, "q": q, **page}


@app.post("/items")
async def create_item(item: Item):
    return {"name": item.name, "price_with_tax": round(item.price * 1.2, 2)}


@app.get("/sleep")
async def sleep(seconds: float = 1.0):
    await asyncio.sleep(seconds)
    return {"slept": seconds}


@app.get("/count")
async def count(to: int = 5):
    async def numbers():
        for i in range(to):
            yield f"{i}\n"
            await asyncio.sleep(0)

    return StreamingResponse(numbers(), media_type="text/plain")
