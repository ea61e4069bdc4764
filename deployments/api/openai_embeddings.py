"""`POST /v1/embeddings`: OpenAI's embeddings API over the tenant's model, for the clients and
frameworks that speak it (the `openai` package, LangChain's `OpenAIEmbeddings`, ...): texts in,
vectors out, nothing stored.

Behind the same API key, rates and plan limits as every route. Its errors are the error model's,
with the same statuses and names, in OpenAI's envelope (`{"error": {"message", "type", "param",
"code"}}`), which deployments.api.errors chooses for every path under `/v1/`.
"""

import base64
from typing import Annotated, Any, Literal

import numpy as np
from fastapi import APIRouter
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field, PlainValidator, StrictInt, StrictStr, WithJsonSchema

from deployments.api.dependencies import ServiceDep
from deployments.api.errors import OPENAI_PREFIX
from deployments.api.schemas import _not_blank
from deployments.core.config import BUNDLED_MODEL_NAMES, Settings
from deployments.core.errors import InvalidRequest
from deployments.core.types import Vectors

PATH = f"{OPENAI_PREFIX}/embeddings"

_JSON_KINDS = {type(None): "null", bool: "a boolean", int: "a number", float: "a number", dict: "an object"}


def _kind(value: object) -> str:
    return _JSON_KINDS.get(type(value), type(value).__name__)


def _texts(value: object) -> list[str]:
    """`input`: a string or a list of strings, each held to /embed/'s rule for a text. OpenAI also
    takes token ids (a list of integers, or of lists of them), ids of its own tokenizers: this
    model's tokenizer is another one, so they are refused rather than misread."""
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list):
        raise ValueError(f"must be a string or a list of strings, not {_kind(value)}")
    if not items:
        raise ValueError("must not be an empty list: give at least one text")
    texts: list[str] = []
    for index, item in enumerate(items):
        if isinstance(item, list) or (isinstance(item, int) and not isinstance(item, bool)):
            raise ValueError(
                "token ids are not accepted: they would be read with OpenAI's tokenizer, and this instance's "
                "model has another one; send the texts themselves"
            )
        if not isinstance(item, str):
            raise ValueError(f"item {index} is {_kind(item)}: each input must be a string")
        try:
            texts.append(_not_blank(item))
        except ValueError as exc:
            if isinstance(value, str):
                raise
            raise ValueError(f"item {index} {exc}") from None
    return texts


# The schema of what `_texts` takes, for /docs and the fuzzing (tests/fuzzing.py).
Texts = Annotated[
    list[str],
    PlainValidator(_texts),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "minLength": 1},
                {"type": "array", "items": {"type": "string", "minLength": 1}, "minItems": 1},
            ]
        }
    ),
]


class EmbeddingsRequest(BaseModel):
    # Unknown fields are refused, as on every route (and by OpenAI): a typo is not silently ignored.
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"model": "all-MiniLM-L6-v2", "input": ["The cat sat on the mat.", "Quarterly revenue grew."]},
                {"model": "all-MiniLM-L6-v2", "input": "pets resting on rugs", "encoding_format": "base64"},
            ]
        },
    )

    input: Texts = Field(
        ...,
        description="A text, or a list of texts (as many as the plan's max_docs_per_request, each at most "
        "max_text_chars). Token-id arrays are refused. A text past the model's window is embedded from its start.",
    )
    model: StrictStr = Field(
        ...,
        description="The instance's MODEL_NAME (GET /healthz/ says it); for the bundled model "
        "`all-MiniLM-L6-v2` or `sentence-transformers/all-MiniLM-L6-v2`.",
    )
    encoding_format: Literal["float", "base64"] = Field(
        "float", description="float: lists of numbers; base64: each vector's little-endian float32 bytes, base64."
    )
    dimensions: StrictInt | None = Field(
        None, description="The model's own dimension only (DIMENSION): its vectors cannot be shortened."
    )
    user: StrictStr | None = Field(None, description="Accepted and ignored (OpenAI's end-user id).")


class Embedding(BaseModel):
    object: Literal["embedding"] = "embedding"
    index: int = Field(..., description="The input's position in the request.")
    embedding: list[float] | str = Field(
        ..., description="The unit-length vector: numbers, or with encoding_format base64 its float32 bytes."
    )


class Usage(BaseModel):
    prompt_tokens: int = Field(..., description="Tokens the model read, by its own tokenizer, special tokens included.")
    total_tokens: int


class EmbeddingsResponse(BaseModel):
    object: Literal["list"] = "list"
    data: list[Embedding] = Field(..., description="One per input, in request order.")
    model: str = Field(..., description="The instance's MODEL_NAME.")
    usage: Usage


class OpenAIError(BaseModel):
    message: str = Field(..., description="What is wrong, in words.")
    type: str = Field(
        ...,
        description="OpenAI's kind, from the status: invalid_request_error, authentication_error, "
        "permission_error, rate_limit_error or server_error.",
    )
    param: str | None = Field(None, description="The request field at fault (the error model's `field`).")
    code: str = Field(..., description="The error model's stable name, e.g. validation_error (README: Errors).")


class OpenAIErrorResponse(BaseModel):
    error: OpenAIError


ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": OpenAIErrorResponse, "description": text}
    for code, text in {
        400: "invalid_json: the body is not valid JSON.",
        401: "unauthorized: the instance has an API key and the request lacks it or has another.",
        403: "read_only_key: API_KEY_READONLY does not open this route.",
        413: "payload_too_large: the body is over the plan's max_body_bytes.",
        422: "validation_error, plan_limit_exceeded: a field is invalid or over the plan's limits; `param` names it.",
        429: "rate_limited: over the plan's requests per second, or its documents per second (each input counts).",
        503: "A deployment is restarting, overloaded or slow; retry after `Retry-After` seconds.",
    }.items()
}


def check_model(requested: str, settings: Settings) -> None:
    """The model asked for must be the one served. The bundled model answers to every name MODEL_NAME
    takes for it (README: Settings), its Hugging Face id included, as clients written for that copy it."""
    served = settings.model_name
    if requested == served:
        return
    names = BUNDLED_MODEL_NAMES if served.strip().lower() in BUNDLED_MODEL_NAMES else set()
    if requested.strip().lower() in names:
        return
    raise InvalidRequest(
        f"model {requested!r} is not served here: this instance embeds with {served!r}; send that as model",
        field="model",
    )


def check_dimensions(dimensions: int | None, settings: Settings) -> None:
    if dimensions is not None and dimensions != settings.dimension:
        raise InvalidRequest(
            f"dimensions is {dimensions}, but this instance's model ({settings.model_name}) makes "
            f"{settings.dimension}-dimensional vectors and cannot shorten them: send {settings.dimension} or leave "
            "it out",
            field="dimensions",
        )


def encoded(vector: Vectors, encoding_format: str) -> list[float] | str:
    """One vector (a row of Vectors) as `encoding_format` asks."""
    if encoding_format == "base64":
        # What OpenAI sends and its client decodes: the float32 bytes, little-endian, in base64.
        return base64.b64encode(np.ascontiguousarray(vector, dtype="<f4").tobytes()).decode("ascii")
    # float32 widened to Python floats: the same numbers /get/ gives back for a stored vector.
    values: list[float] = vector.tolist()
    return values


router = APIRouter()


async def create_embeddings(body: EmbeddingsRequest, service: ServiceDep) -> Response:
    """OpenAI's embeddings API: the model's vectors of `input` (a text or a list of texts), stored
    nowhere, in the order given, with the tokens the model read as `usage`. The vectors are those
    `POST /embed/` stores for the same texts. `model` must be the instance's MODEL_NAME; errors come
    as `{"error": {"message", "type", "param", "code"}}`, which OpenAI's clients read. Point an
    OpenAI client's `base_url` at `<instance>/v1`.

    ```
    curl -X POST localhost:8000/v1/embeddings -H 'Content-Type: application/json' \\
      -d '{"model": "all-MiniLM-L6-v2", "input": ["The cat sat on the mat.", "Quarterly revenue grew."]}'
    ```
    """
    settings = service.settings
    check_model(body.model, settings)
    check_dimensions(body.dimensions, settings)
    vectors, tokens = await service.embeddings(body.input)
    answer = EmbeddingsResponse(
        data=[
            # Built from our own numbers, so not validated again: a thousand vectors are 384,000 floats.
            Embedding.model_construct(index=index, embedding=encoded(vector, body.encoding_format))
            for index, vector in enumerate(vectors)
        ],
        model=settings.model_name,
        usage=Usage(prompt_tokens=sum(tokens), total_tokens=sum(tokens)),
    )
    # Serialised once, by pydantic's own encoder; returned as is, FastAPI would validate it again.
    return Response(answer.model_dump_json(), media_type="application/json")


# OpenAI's path, without a slash (what its clients call), and with one, like every route here: a
# redirect between them would make clients drop the POST's body.
router.add_api_route(
    PATH,
    create_embeddings,
    methods=["POST"],
    response_model=EmbeddingsResponse,
    responses=ERRORS,
    summary="Embed texts, OpenAI's way (nothing is stored)",
)
router.add_api_route(
    f"{PATH}/", create_embeddings, methods=["POST"], response_model=EmbeddingsResponse, include_in_schema=False
)
