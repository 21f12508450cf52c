"""``Dataset``: the images (and optional same-name ``.txt`` captions) a LoRA training job learns from.

One source per dataset: a zip (inline base64, an http(s) URL, or an ``s3://`` object), an ``s3://`` prefix (every
object under it), or a list of URLs. The worker unpacks it into the job's input folder, writes the trigger word into
every caption and checks it (:mod:`handlers.workflow._dataset`) before the GPU is touched.
"""

from __future__ import annotations

from typing import Annotated, Any, Self

from pydantic import Field, ModelWrapValidatorHandler, StringConstraints, field_validator, model_validator

from handlers.contract._common import StrictModel, with_cross_checks
from handlers.contract._sources import (
    S3_URI,
    check_base64,
    check_http_url,
    is_http_url,
    one_source_problem,
    strip_base64,
)

__all__ = ["MAX_DATASET_URLS", "Dataset"]

MAX_DATASET_URLS = 1000
"""Files of a dataset given as URLs (images and captions together)."""

_Url = Annotated[str, StringConstraints(max_length=4096)]


class Dataset(StrictModel):
    """A LoRA training dataset: give exactly one of ``zip_base64``, ``zip_url``, ``s3`` or ``urls``. Its staged
    folder becomes the template's ``dataset`` parameter."""

    zip_base64: str | None = Field(default=None, description="a zip, base64 or a data: URI", repr=False)
    zip_url: _Url | None = Field(default=None, description="http(s) URL of a zip")
    s3: str | None = Field(
        default=None,
        pattern=S3_URI.pattern,
        description="s3://bucket/key.zip (a zip), or s3://bucket/prefix/ (ending in '/': every object under it)",
    )
    urls: list[_Url] | None = Field(
        default=None,
        max_length=MAX_DATASET_URLS,
        description="http(s) URLs of the images and of their same-name .txt captions",
    )
    trigger_word: str | None = Field(
        default=None,
        min_length=1,
        max_length=128,
        description="written into every caption; default: the trigger_word parameter, else the character's first "
        "trigger word",
    )

    @field_validator("zip_url")
    @classmethod
    def _http(cls, value: str | None) -> str | None:
        return None if value is None else check_http_url(value)

    @field_validator("urls")
    @classmethod
    def _http_list(cls, value: list[str] | None) -> list[str] | None:
        if value is not None:
            bad = [i for i, url in enumerate(value) if not is_http_url(url)]
            if bad:
                raise ValueError(f"item(s) {', '.join(map(str, bad[:10]))} must be http(s) URLs")
            if not value:
                raise ValueError("must name at least one file")
        return value

    @field_validator("zip_base64")
    @classmethod
    def _base64(cls, value: str | None) -> str | None:
        if value is not None:
            check_base64(strip_base64(value)[0])
        return value

    @model_validator(mode="wrap")
    @classmethod
    def _one_source(cls, data: Any, handler: ModelWrapValidatorHandler[Self]) -> Self:
        problem = one_source_problem(data, ("zip_base64", "zip_url", "s3", "urls"))
        result: Self = with_cross_checks(cls.__name__, data, handler, [problem] if problem else [])
        return result

    @property
    def s3_prefix(self) -> str | None:
        """The ``s3://bucket/prefix/`` to list, when the dataset is one."""
        return self.s3 if self.s3 is not None and self.s3.endswith("/") else None
