"""Request bodies are read safely: file fields take files, never addresses, and a body that
cannot be parsed is the client's error.

BentoML reads a text value sent in a file field (``-F image=photo.jpg`` without the ``@``, or
a URL) as an address and downloads it, from inside the server. ClipMorph offers no fetching,
so such a value gets a 400 that says to upload the file, and nothing is ever fetched.
A multipart body without a boundary, cut off, or of garbage made BentoML's parser raise
errors it answered with 500; they become 400s. BentoML has no setting for either: the checks
wrap its serdes' steps.
"""

from __future__ import annotations

from bentoml.exceptions import BadInput

MESSAGE = "{name}: send the file itself (multipart upload, curl -F 'field=@path'), not a name or an address"


async def only_uploads(obj):
    from starlette.datastructures import UploadFile

    if isinstance(obj, UploadFile):
        return obj
    from clipmorph.serving import metrics

    metrics.rejected("not_a_file")
    raise BadInput(MESSAGE.format(name="file field"))


def client_errors_when_parsing(parse):
    """``parse_request`` whose failures to read the body are 400s (validation errors and
    BentoML's own errors pass through: BentoML answers them already)."""
    if getattr(parse, "clipmorph_guarded", False):
        return parse

    async def guarded(self, request, cls):
        from bentoml.exceptions import BentoMLException
        from pydantic import ValidationError

        try:
            return await parse(self, request, cls)
        except (ValidationError, BentoMLException):
            raise
        except Exception as error:  # the parser's own errors: a body that is not what it says
            from clipmorph.serving import metrics

            metrics.rejected("malformed_body")
            kind = request.headers.get("content-type", "").split(";")[0] or "no content type"
            raise BadInput(f"the request body could not be read as {kind}: {type(error).__name__}") from None

    guarded.clipmorph_guarded = True
    return guarded


def refuse_addresses_in_file_fields() -> None:
    """Install the checks (idempotent); every API worker does it when it imports the service."""
    from _bentoml_impl.serde import ALL_SERDE, MultipartSerde

    if not hasattr(MultipartSerde, "ensure_file"):  # BentoML changed: fail loudly, never run unguarded
        raise RuntimeError("this BentoML has no MultipartSerde.ensure_file: review serving/upstream/uploads.py")
    MultipartSerde.ensure_file = staticmethod(only_uploads)
    for serde in ALL_SERDE.values():
        serde.parse_request = client_errors_when_parsing(serde.parse_request)
